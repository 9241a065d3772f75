/* cli.h: what the subcommands of the imgsearch tool share.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)` with argv[0] the
 * subcommand's name; it returns the process exit status. Results go to stdout,
 * diagnostics to stderr. Only cli/ decides to exit.
 */
#ifndef IMS_CLI_H
#define IMS_CLI_H

#include "imgsearch.h"

#include <stdio.h>

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1, /* the command ran and failed (bad file, no device, ...) */
    CLI_EXIT_USAGE = 2,   /* the command line was wrong */
    CLI_EXIT_SOME_FAILED = 3, /* done, but some images were skipped (each reported on stderr) */
};

int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_embed_image(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_embed_text(int argc, char **argv);
int cmd_knn(int argc, char **argv);

/* "imgsearch: <msg>" on stderr; returns CLI_EXIT_FAILURE. */
int cli_error(const ims_error *err);
/* "imgsearch <cmd>: <msg>\n(try 'imgsearch <cmd> --help')"; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* JSON output helpers (json.c). */
void json_string(FILE *out, const char *s, size_t len);
void json_double(FILE *out, double v); /* NaN and Inf as strings, which JSON lacks */

/* Common options and model loading (models.c). */

/* Parses an integer option in lo..hi; 0, or the usage error's exit status. */
int cli_parse_int(const char *cmd, const char *option, const char *text, int lo, int hi, int *out);
int cli_default_threads(int at_most); /* the CPU count, at most at_most */
/* device: "cpu", "cuda", or NULL for cuda when a GPU is usable, else cpu. */
ims_status cli_backend_open(const char *device, int gpu, ims_backend **out, ims_error *err);
/* text: "torchvision", "fid", or NULL for the image model's own mode. */
ims_status cli_parse_mode(const char *text, const ims_weights *image_model, ims_preprocess_mode *out, ims_error *err);

/* A backend and the models a command uses. Precision: the option, else fp16 on
 * a GPU and fp32 on the CPU. Paths may be NULL (that model is not opened). */
typedef struct cli_models {
    ims_backend *backend;
    ims_precision precision;
    ims_weights *image_weights, *text_weights;
    ims_text_embedder *text;
} cli_models;

ims_status cli_models_open(cli_models *m, const char *device, int gpu, const char *precision, const char *image_path,
                           const char *text_path, ims_error *err);
int cli_models_synthetic(const cli_models *m); /* 1 if the image model says its weights are synthetic */
void cli_models_close(cli_models *m);          /* a zeroed cli_models is fine */

/* Progress on stderr (progress.c). */
typedef struct cli_progress {
    const char *what; /* "images" */
    size_t total;
    double start, last;
    int tty, drawn;
} cli_progress;

double cli_now(void); /* seconds, monotonic */
void cli_progress_init(cli_progress *p, const char *what, size_t total);
/* Redraws when due (final: always, and ends the line). */
void cli_progress_update(cli_progress *p, size_t done, size_t failed, int final);

#endif /* IMS_CLI_H */
