/* progress.c: the progress display of long commands, on stderr.
 *
 * On a terminal: one line redrawn in place at most 10 times a second, with a
 * bar, the rate, the ETA and the failures so far. Otherwise (a log file, a
 * pipe): a plain line every 10 seconds, so logs stay readable.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <unistd.h>

void cli_progress_init(cli_progress *p, const char *what, size_t total)
{
    p->what = what;
    p->total = total;
    p->start = ims_clock_seconds();
    p->last = 0;
    p->tty = isatty(fileno(stderr));
    p->drawn = 0;
}

static void format_duration(double s, char *buf, size_t size)
{
    if (!(s >= 0) || s > 360000) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, size_t done, size_t failed, int final)
{
    double now = ims_clock_seconds(), elapsed = now - p->start;
    if (!final && (done >= p->total || now - p->last < (p->tty ? 0.1 : 10.0)))
        return; /* the final line will say it */
    p->last = now;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[32], spent[32];
    format_duration(rate > 0 ? (double)(p->total - done) / rate : -1, eta, sizeof eta);
    format_duration(elapsed, spent, sizeof spent);
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %zu/%zu %s  %.1f/s  %s %s  %zu skipped\033[K", bar, done, p->total, p->what, rate,
                final ? "took" : "ETA", final ? spent : eta, failed);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "%zu/%zu %s (%.0f%%), %.1f/s, %s %s, %zu skipped\n", done, p->total, p->what, 100 * frac,
                rate, final ? "took" : "ETA", final ? spent : eta, failed);
    }
    fflush(stderr);
    p->drawn = 1;
}
