/* bench_preprocess.c: images per second, one thread, for decode + torchvision
 * preprocessing (Resize 342, CenterCrop 299) and for the preprocessing alone.
 *
 * Usage: bench_preprocess [--seconds S] NAME=FILE[,FILE...] ...
 * Files of any format the decoder reads (by content: JPEG, PNG, WebP, TIFF,
 * GIF, BMP). Each NAME is one set of files; every set is run for at least S seconds
 * (default 2) by cycling over its files. One output line per set:
 *   set NAME files N decode+preprocess IPS preprocess IPS
 * bench/pillow_preprocess.py drives it and prints the comparison with Pillow.
 */
#include "imgsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_RESIZE 342
#define BENCH_CROP 299
#define BENCH_MAX_FILES 64

static int bench_fail(const char *what, const ims_error *err)
{
    fprintf(stderr, "bench_preprocess: %s: %s\n", what, err->msg);
    return 1;
}

/* Runs one set; returns 0 on success. */
static int bench_set(const char *name, char **files, int n, double seconds, uint8_t *out)
{
    ims_decode_options opt;
    ims_decode_options_init(&opt);
    opt.apply_exif_orientation = 0; /* torchvision's pipeline ignores EXIF */
    ims_error err = {0};

    /* decode + preprocess, as a data loader does it */
    long count = 0;
    double t0 = ims_clock_seconds(), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < n; i++) {
            ims_image img = {0};
            if (ims_image_decode_file(files[i], &opt, &img, &err) != IMS_OK)
                return bench_fail(files[i], &err);
            ims_status st = ims_preprocess_torchvision_u8(&img, BENCH_RESIZE, BENCH_CROP, out, &err);
            ims_image_free(&img);
            if (st != IMS_OK)
                return bench_fail(files[i], &err);
            count++;
        }
        t = ims_clock_seconds();
    }
    double full_ips = (double)count / (t - t0);

    /* preprocess alone, on images decoded once */
    ims_image imgs[BENCH_MAX_FILES];
    memset(imgs, 0, sizeof imgs);
    for (int i = 0; i < n; i++)
        if (ims_image_decode_file(files[i], &opt, &imgs[i], &err) != IMS_OK)
            return bench_fail(files[i], &err);
    count = 0;
    t0 = t = ims_clock_seconds();
    while (t - t0 < seconds) {
        for (int i = 0; i < n; i++) {
            if (ims_preprocess_torchvision_u8(&imgs[i], BENCH_RESIZE, BENCH_CROP, out, &err) != IMS_OK)
                return bench_fail(files[i], &err);
            count++;
        }
        t = ims_clock_seconds();
    }
    double pre_ips = (double)count / (t - t0);
    for (int i = 0; i < n; i++)
        ims_image_free(&imgs[i]);
    printf("set %s files %d decode+preprocess %.2f preprocess %.2f\n", name, n, full_ips, pre_ips);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    static uint8_t out[BENCH_CROP * BENCH_CROP * 3];
    int rc = 0;
    for (int a = 1; a < argc && rc == 0; a++) {
        if (strcmp(argv[a], "--seconds") == 0 && a + 1 < argc) {
            seconds = atof(argv[++a]);
            continue;
        }
        char *eq = strchr(argv[a], '=');
        if (!eq) {
            fprintf(stderr, "usage: bench_preprocess [--seconds S] NAME=FILE[,FILE...] ...\n");
            return 2;
        }
        *eq = '\0';
        char *files[BENCH_MAX_FILES];
        int n = 0;
        for (char *f = strtok(eq + 1, ","); f && n < BENCH_MAX_FILES; f = strtok(NULL, ","))
            files[n++] = f;
        if (n == 0) {
            fprintf(stderr, "bench_preprocess: set %s has no files\n", argv[a]);
            return 2;
        }
        rc = bench_set(argv[a], files, n, seconds, out);
    }
    return rc;
}
