/* inception_weights.h: the Inception-v3 test weights and images, rebuilt in C
 * from the generator of tests/fixtures/inception_golden/make_golden.py (which
 * documents it), for test_inception.c and test_inception_gpu.c.
 *
 * inception_make_model() writes a torchvision-named safetensors checkpoint
 * from tensors_V.txt with the generator of weights_tools/synthetic.h and
 * converts it to a weight file with ims_convert.
 */
#ifndef IMS_TEST_INCEPTION_WEIGHTS_H
#define IMS_TEST_INCEPTION_WEIGHTS_H

#include "test.h"

#include "weights_tools/synthetic.h"

#include <math.h>
#include <unistd.h>

#define IMAGES 8
#define SIZE 299
#define FEATURES 2048

static inline uint8_t *make_images(void)
{
    uint8_t *img = malloc((size_t)IMAGES * SIZE * SIZE * 3);
    uint64_t st = imsi_synth_fnv1a64("images");
    for (size_t i = 0; img && i < (size_t)IMAGES * SIZE * SIZE * 3; i++)
        img[i] = (uint8_t)floor(imsi_synth_uniform(&st) * 256.0);
    return img;
}

/* Reads tensors_V.txt; returns the count (0 on failure). */
static inline int read_manifest(const char *path, synth_tensor *out, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    synth_tensor t;
    while (n < max && fscanf(f, "%127s %lf %lf %d", t.name, &t.lo, &t.hi, &t.ndim) == 4) {
        t.numel = 1;
        for (int d = 0; d < t.ndim && d < 4; d++) {
            if (fscanf(f, "%lld", (long long *)&t.shape[d]) != 1)
                t.shape[d] = 0;
            t.numel *= t.shape[d];
        }
        out[n++] = t;
    }
    fclose(f);
    return n;
}

/* Writes a safetensors file of every manifest tensor, filled by the generator. */
static inline int write_checkpoint(const char *path, const synth_tensor *ts, int n)
{
    unsigned char *image = NULL;
    size_t size = 0;
    if (imsi_synth_safetensors(ts, n, &image, &size, NULL))
        return 0;
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(image, 1, size, f) == size;
    free(image);
    return f && fclose(f) == 0 && ok;
}

/* Builds tmpdir/V.isw from the manifest in dir; 0 on failure (with a message on stderr). */
static inline int inception_make_model(const char *dir, const char *variant, ims_convert_arch arch, const char *tmpdir,
                                char *isw, size_t isw_size)
{
    char path[1024], ckpt[1024];
    synth_tensor *ts = calloc(600, sizeof *ts);
    snprintf(path, sizeof path, "%s/tensors_%s.txt", dir, variant);
    int n = ts ? read_manifest(path, ts, 600) : 0;
    snprintf(ckpt, sizeof ckpt, "%s/%s.safetensors", tmpdir, variant);
    snprintf(isw, isw_size, "%s/%s.isw", tmpdir, variant);
    int ok = n == 472 && write_checkpoint(ckpt, ts, n); /* 94 layers x 5 + fc */
    free(ts);
    if (!ok) {
        fprintf(stderr, "%s: cannot read %s (%d tensors) or write %s\n", variant, path, n, ckpt);
        return 0;
    }
    ims_error err = {0};
    ims_convert_options o;
    ims_convert_options_init(&o);
    o.arch = arch;
    ims_convert_report rep;
    ims_status st = ims_convert(ckpt, isw, &o, &rep, &err);
    unlink(ckpt);
    if (st)
        fprintf(stderr, "%s: convert: %s\n", variant, err.msg);
    return st == IMS_OK;
}

#endif /* IMS_TEST_INCEPTION_WEIGHTS_H */
