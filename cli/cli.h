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
};

int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
/* --- inception --- */
int cmd_classify(int argc, char **argv);
int cmd_embed_image(int argc, char **argv);

/* "imgsearch: <msg>" on stderr; returns CLI_EXIT_FAILURE. */
int cli_error(const ims_error *err);
/* "imgsearch <cmd>: <msg>\n(try 'imgsearch <cmd> --help')"; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* JSON output helpers (json.c). */
void json_string(FILE *out, const char *s, size_t len);
void json_double(FILE *out, double v); /* NaN and Inf as strings, which JSON lacks */

#endif /* IMS_CLI_H */
