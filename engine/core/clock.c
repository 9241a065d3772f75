/* clock.c: the library's one clock (ims_clock_seconds), for timing and
 * progress: monotonic, so it never jumps with the wall clock. */
#include "imgsearch.h"

#include <time.h>

double ims_clock_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
