/* report.c: the one-line failures of the imgsearch command on stderr, in one
 * form: "imgsearch: [FILE: ]reason". Usage errors (exit 2) are args.c's.
 * Messages carry file names and texts the user's data chose: they go out
 * through text_safe, so they stay one line and cannot drive the terminal. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

int cli_error(const ims_error *err)
{
    fputs("imgsearch: ", stderr);
    text_safe(stderr, err->msg[0] ? err->msg : ims_status_name(err->code));
    fputc('\n', stderr);
    return CLI_EXIT_FAILURE;
}

void cli_report_file(const char *what, const char *path, const char *reason)
{
    fprintf(stderr, "imgsearch: %s", what);
    text_safe(stderr, path);
    fputs(": ", stderr);
    text_safe(stderr, reason);
    fputc('\n', stderr);
}

int cli_file_error(const char *path, const ims_error *err)
{
    cli_report_file("", path, err->msg[0] ? err->msg : ims_status_name(err->code));
    return CLI_EXIT_FAILURE;
}

void cli_image_warning(const char *path, const char *msg)
{
    cli_report_file("warning: ", path, msg);
}

int cli_finish_output(int status)
{
    /* Results that did not all reach stdout (a full disk, a closed pipe, >/dev/full)
     * are a failure, whatever the command thought. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "imgsearch: writing the results failed: %s\n", errno ? strerror(errno) : "write error");
        return status == CLI_EXIT_USAGE ? status : CLI_EXIT_FAILURE;
    }
    return status;
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
