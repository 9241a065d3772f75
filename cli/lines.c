/* lines.c: text lines from a file or stdin, for the commands that read them
 * (embed-text, tokenize, search --queries, the vocabulary of tokenize).
 *
 * A line longer than CLI_LINE_MAX and a read error (stdin a folder, an I/O
 * error) stop the command with a message that says so: never an endless read
 * of /dev/zero, never a silent end that looks like success. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cli_lines_init(cli_lines *r, FILE *f, const char *what)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->what = what;
}

int cli_lines_next(cli_lines *r, char **line, size_t *len)
{
    size_t n = 0;
    int c = EOF;
    errno = 0;
    while ((c = getc(r->f)) != EOF && c != '\n') {
        if (n == CLI_LINE_MAX) {
            fprintf(stderr, "imgsearch: %s: line %zu is longer than %d bytes\n", r->what, r->line_no + 1,
                    CLI_LINE_MAX);
            return -1;
        }
        if (n + 1 >= r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 256;
            char *p = realloc(r->buf, cap);
            if (!p) {
                fprintf(stderr, "imgsearch: %s: out of memory reading line %zu\n", r->what, r->line_no + 1);
                return -1;
            }
            r->buf = p;
            r->cap = cap;
        }
        r->buf[n++] = (char)c;
    }
    if (c == EOF && ferror(r->f)) {
        fprintf(stderr, "imgsearch: reading %s failed: %s\n", r->what, errno ? strerror(errno) : "read error");
        return -1;
    }
    if (c == EOF && n == 0)
        return 0;
    if (!r->buf && !(r->buf = malloc(r->cap = 1))) {
        fprintf(stderr, "imgsearch: %s: out of memory\n", r->what);
        return -1;
    }
    r->buf[n] = '\0';
    r->line_no++;
    *line = r->buf;
    *len = n;
    return 1;
}

void cli_lines_free(cli_lines *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}
