/* cli.h: what the subcommands of the imgsearch tool share.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)` with argv[0] the
 * subcommand's name; it returns the process exit status. Results go to stdout,
 * diagnostics to stderr. Only cli/ decides to exit, and only main.c knows the
 * table of commands. The files below main.c (args.c, report.c, models.c,
 * output.c, progress.c) call nothing above them, so the link graph has no loops.
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
int cmd_index_set(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_embed_text(int argc, char **argv);
int cmd_knn(int argc, char **argv);
int cmd_fid(int argc, char **argv);

/* ---- Reporting (report.c) ---------------------------------------------------- */

/* "imgsearch: <msg>" on stderr (the status's name when msg is empty); returns CLI_EXIT_FAILURE. */
int cli_error(const ims_error *err);
/* "imgsearch: <path>: <msg>": an error that belongs to an input file; returns CLI_EXIT_FAILURE. */
/* "imgsearch: WHAT PATH: REASON" on stderr (a skipped image, a failed file). */
void cli_report_file(const char *what, const char *path, const char *reason);
int cli_file_error(const char *path, const ims_error *err);
/* "imgsearch: warning: <path>: <msg>": an image that decoded with a warning. */
void cli_image_warning(const char *path, const char *msg);
/* "imgsearch: <printf text>": the command's own one-line failure; returns CLI_EXIT_FAILURE. */
/* The command's exit status, or CLI_EXIT_FAILURE if what it wrote to stdout
 * did not all get there (checked once, at the end: main.c). */
int cli_finish_output(int status);

int cli_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---- The command line (args.c) ------------------------------------------------ */

/* How far `word` is from `name` (name_len bytes) as a typo (adjacent swaps
 * count once), or SIZE_MAX when too far to suggest name for it. */
size_t cli_typo_distance(const char *word, const char *name, size_t name_len);

/* A cursor over one command's arguments. The loop of every command:
 *
 *     cli_args a;
 *     cli_args_init(&a, "knn", knn_usage, argc, argv);
 *     while (cli_args_next(&a)) {
 *         if (a.operand)                   ... a file operand ...
 *         else if (cli_is(&a, "-k"))       cli_arg_int(&a, 1, IMS_KNN_MAX_K, &k);
 *         else if (cli_is(&a, "--json"))   json = 1;
 *         else                             cli_args_unknown(&a);
 *     }
 *     if (a.status >= 0)
 *         return a.status;                 (--help was printed, or a usage error)
 *
 * --help and -h print the help text and stop with status 0; "--" makes every
 * later argument an operand; "--name=value" is "--name value". A value helper
 * (cli_arg_*) consumes the current option's value and returns 0, or reports a
 * usage error naming the option and returns its exit status, which also ends
 * the loop (a.status). A flag given "=value" is a usage error. */
typedef struct cli_args {
    const char *cmd, *help;
    int argc, i;
    char **argv;
    int operands_only;       /* after "--" */
    const char *opt;         /* the current option ("--device"), or NULL */
    const char *operand;     /* the current operand, or NULL */
    const char *inline_value; /* "--name=value": value not taken yet */
    char name[64];           /* "--name" of "--name=value" */
    struct {
        const char *ptr;
        size_t len;
    } tried[48]; /* the names cli_is compared the current option with: for "did you mean" */
    int tried_count;
    int status; /* -1 while parsing goes on, else the exit status to stop with */
} cli_args;

void cli_args_init(cli_args *a, const char *cmd, const char *help, int argc, char **argv);
/* 1: a.opt or a.operand is the next argument; 0: the end, or a.status >= 0. */
int cli_args_next(cli_args *a);
/* 1 if the current option is one of names ("-o|--output"). */
int cli_is(cli_args *a, const char *names);
/* The current argument was not understood: an unknown option (with the
 * nearest name the command knows) or an unexpected operand. */
int cli_args_unknown(cli_args *a);
/* Ends the loop with a failure the command reported itself (a file named by
 * an option could not be read); returns status. */
int cli_args_stop(cli_args *a, int status);
/* A usage error of this command (a missing operand, options that conflict):
 * "imgsearch <cmd>: <msg>\n(try 'imgsearch <cmd> --help')"; returns CLI_EXIT_USAGE. */
int cli_args_error(cli_args *a, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Growable lists of argument strings: operands, repeated options. */
typedef struct cli_list {
    const char **items;
    size_t count, cap;
} cli_list;

void cli_list_free(cli_list *l);
int cli_list_add(cli_args *a, cli_list *l, const char *s); /* 0, or CLI_EXIT_FAILURE (out of memory) */

/* Values: each returns 0 or the exit status (the error already reported). */
int cli_arg_string(cli_args *a, const char **out);  /* any text, empty included */
int cli_arg_path(cli_args *a, const char **out);    /* a non-empty path */
int cli_arg_append(cli_args *a, cli_list *l);       /* a repeated option: each value, in order */
int cli_arg_int(cli_args *a, int lo, int hi, int *out);
int cli_arg_int64(cli_args *a, int64_t lo, int64_t hi, int64_t *out);
/* One of names (NULL-terminated); *out is its index. */
int cli_arg_choice(cli_args *a, const char *const *names, int *out);
int cli_arg_dtype(cli_args *a, ims_dtype *out); /* f16|f32: storage of weights or tables */

/* --precision fp32|tf32|fp16: an ims_precision, or CLI_PRECISION_DEFAULT when
 * not given (the command's default for its device). */
#define CLI_PRECISION_DEFAULT (-1)
int cli_arg_precision(cli_args *a, int *out);
/* --mode torchvision|fid: an ims_preprocess_mode, or CLI_MODE_MODEL when not
 * given (the mode the image model's metadata names). */
#define CLI_MODE_MODEL (-1)
int cli_arg_mode(cli_args *a, int *out);

/* Where a command runs: --device auto|cpu|cuda (auto: cuda when a GPU is
 * usable, else the CPU) and --gpu N (which GPU; 0 by default). Every command
 * that runs a model or a search takes both:
 *     else if (cli_is(&a, CLI_DEVICE_OPTIONS)) cli_arg_device(&a, &device); */
typedef enum cli_device_kind {
    CLI_DEVICE_AUTO = 0,
    CLI_DEVICE_CPU,
    CLI_DEVICE_CUDA,
} cli_device_kind;

typedef struct cli_device {
    cli_device_kind kind;
    int gpu;          /* --gpu N, or the first of a list */
    uint64_t gpu_set; /* --gpu 0,1,..: the GPUs of a list of two or more; 0 otherwise */
    int gpu_all;      /* --gpu all */
} cli_device;

#define CLI_DEVICE_OPTIONS "--device|--gpu"
#define CLI_GPU_MAX 63
int cli_arg_device(cli_args *a, cli_device *d); /* the value of --device or --gpu, whichever is current */

/* --max-pixels N, for every command that reads images: refuse an image of
 * more than N pixels and warn above N / 2, Pillow's ratio (its defaults,
 * which are ours, are 178,956,970 and 89,478,485). Sets both in o. */
#define CLI_MAX_PIXELS_OPTION "--max-pixels"
#define CLI_MAX_PIXELS_HELP                                                                              \
    "  --max-pixels N       refuse images of more than N pixels (default 178956970, as\n"              \
    "                       Pillow); warn above N / 2 (a possible decompression bomb)\n"
int cli_arg_max_pixels(cli_args *a, ims_decode_options *o);

/* The current operand appended to l. */
int cli_operand_add(cli_args *a, cli_list *l);

/* ---- Output of names we do not control (output.c) ---------------------------- */
/* A JSON string; invalid UTF-8 bytes become U+FFFD, so the output is always valid JSON. */
void json_string(FILE *out, const char *s, size_t len);
/* "key": "path", and "key_bytes": the exact bytes (ASCII, others %XX) when the
 * path is not valid UTF-8 (urllib.parse.unquote_to_bytes reads them back). */
void json_path(FILE *out, const char *key, const char *path);
void json_double(FILE *out, double v); /* NaN and Inf as strings, which JSON lacks */
/* s with control characters and invalid UTF-8 bytes as \xNN: safe on a terminal, one line. */
void text_safe(FILE *out, const char *s);
int text_is_utf8(const char *s, size_t len);
/* The length of the valid UTF-8 sequence at s[0..len), or 0 if s[0] starts none. */
size_t text_utf8_length(const unsigned char *s, size_t len);

/* ---- Devices and models (models.c) --------------------------------------------- */

int cli_default_threads(int at_most); /* the CPU count, at most at_most */
/* The backend d names (auto: cuda when GPU d->gpu is usable, else the CPU).
 * Several GPUs (--gpu all or a list) are refused: only knn splits a table. */
ims_status cli_device_open(const cli_device *d, ims_backend **out, ims_error *err);
/* knn: every backend d names, one per GPU of --gpu all or a list (or the one
 * of cli_device_open); *count of them into bes (at most CLI_GPU_MAX + 1). */
ims_status cli_devices_open(const cli_device *d, ims_backend **bes, int *count, ims_error *err);
/* mode: an ims_preprocess_mode, or CLI_MODE_MODEL for the image model's own. */
ims_preprocess_mode cli_mode_resolve(int mode, const ims_weights *image_model);

/* A backend and the weight files a command uses. Precision: the option, else
 * fp16 on a GPU and fp32 on the CPU. Paths may be NULL (that file is not opened). */
typedef struct cli_models {
    ims_backend *backend;
    ims_precision precision;
    ims_weights *image_weights, *text_weights;
} cli_models;

/* precision: an ims_precision or CLI_PRECISION_DEFAULT. */
ims_status cli_models_load(cli_models *m, const cli_device *d, int precision, const char *image_path,
                           const char *text_path, ims_error *err);
int cli_models_synthetic(const cli_models *m); /* 1 if the image model says its weights are synthetic */
void cli_models_close(cli_models *m);          /* a zeroed cli_models is fine */

/* ---- Progress on stderr (progress.c) --------------------------------------------- */
typedef struct cli_progress {
    const char *what; /* "images" */
    size_t total;
    double start, last;
    int tty, drawn;
} cli_progress;

void cli_progress_init(cli_progress *p, const char *what, size_t total);
/* Redraws when due (final: always, and ends the line). */
void cli_progress_update(cli_progress *p, size_t done, size_t failed, int final);

/* Text lines from a file or stdin (lines.c). */
#define CLI_LINE_MAX (1 << 20) /* bytes in one line: texts, queries and vocabulary entries are far shorter */
typedef struct cli_lines {
    FILE *f;
    const char *what; /* "stdin", "queries file 'q.txt'": names the input in messages */
    char *buf;
    size_t cap, line_no;
} cli_lines;

void cli_lines_init(cli_lines *r, FILE *f, const char *what);
/* 1: the next line in *line (*len bytes without its '\n'; a '\r' stays; NUL
 * bytes may occur), valid until the next call; 0: the end; -1: an error
 * (a read error, a line longer than CLI_LINE_MAX), already printed. */
int cli_lines_next(cli_lines *r, char **line, size_t *len);
void cli_lines_free(cli_lines *r);

#endif /* IMS_CLI_H */
