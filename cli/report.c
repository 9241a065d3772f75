/* report.c: the one-line failures of the imgsearch command on stderr, in one
 * form: "imgsearch: [FILE: ]reason". Usage errors (exit 2) are args.c's. */
#include "cli.h"

#include <stdarg.h>

int cli_error(const ims_error *err)
{
    fprintf(stderr, "imgsearch: %s\n", err->msg[0] ? err->msg : ims_status_name(err->code));
    return CLI_EXIT_FAILURE;
}

int cli_file_error(const char *path, const ims_error *err)
{
    fprintf(stderr, "imgsearch: %s: %s\n", path, err->msg[0] ? err->msg : ims_status_name(err->code));
    return CLI_EXIT_FAILURE;
}

void cli_image_warning(const char *path, const char *msg)
{
    fprintf(stderr, "imgsearch: warning: %s: %s\n", path, msg);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("imgsearch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_FAILURE;
}
