/* inception_weights.h: the Inception-v3 test weights and images, rebuilt in C
 * from the generator of tests/fixtures/inception_golden/make_golden.py (which
 * documents it), for test_inception.c and test_inception_gpu.c.
 *
 * inception_make_model() writes a torchvision-named safetensors checkpoint
 * from tensors_V.txt and converts it to a weight file with ims_convert.
 */
#ifndef IMS_TEST_INCEPTION_WEIGHTS_H
#define IMS_TEST_INCEPTION_WEIGHTS_H

#include "test.h"

#include <math.h>
#include <unistd.h>

#define IMAGES 8
#define SIZE 299
#define FEATURES 2048

static inline uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The generator of make_golden.py: the i-th (1-based) splitmix64 output from seed(name). */
static inline double gen_uniform(uint64_t *state)
{
    return (double)(test_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

static inline uint8_t *make_images(void)
{
    uint8_t *img = malloc((size_t)IMAGES * SIZE * SIZE * 3);
    uint64_t st = fnv1a64("images");
    for (size_t i = 0; img && i < (size_t)IMAGES * SIZE * SIZE * 3; i++)
        img[i] = (uint8_t)floor(gen_uniform(&st) * 256.0);
    return img;
}

typedef struct gen_tensor {
    char name[128];
    double lo, hi;
    int ndim;
    int64_t shape[4], numel;
} gen_tensor;

/* Reads tensors_V.txt; returns the count (0 on failure). */
static inline int read_manifest(const char *path, gen_tensor *out, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    gen_tensor t;
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
static inline int write_checkpoint(const char *path, const gen_tensor *ts, int n)
{
    test_buf hdr = {0};
    char tmp[512];
    uint64_t off = 0;
    test_buf_put(&hdr, "{", 1);
    for (int i = 0; i < n; i++) {
        int len = snprintf(tmp, sizeof tmp, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", ts[i].name);
        test_buf_put(&hdr, tmp, (size_t)len);
        for (int d = 0; d < ts[i].ndim; d++) {
            len = snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
            test_buf_put(&hdr, tmp, (size_t)len);
        }
        uint64_t end = off + (uint64_t)ts[i].numel * 4;
        len = snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                       (unsigned long long)end);
        test_buf_put(&hdr, tmp, (size_t)len);
        off = end;
    }
    test_buf_put(&hdr, "}", 1);
    while (hdr.len % 8)
        test_buf_put(&hdr, " ", 1);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    unsigned char le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (unsigned char)((uint64_t)hdr.len >> (8 * b));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr.p, 1, hdr.len, f) == hdr.len;
    free(hdr.p);
    for (int i = 0; ok && i < n; i++) {
        uint64_t st = fnv1a64(ts[i].name);
        float *v = malloc((size_t)ts[i].numel * sizeof *v);
        if (!v)
            break;
        for (int64_t j = 0; j < ts[i].numel; j++)
            v[j] = (float)(ts[i].lo + (ts[i].hi - ts[i].lo) * gen_uniform(&st));
        ok = fwrite(v, sizeof *v, (size_t)ts[i].numel, f) == (size_t)ts[i].numel; /* little-endian host */
        free(v);
    }
    return fclose(f) == 0 && ok;
}

/* Builds tmpdir/V.isw from the manifest in dir; 0 on failure (with a message on stderr). */
static inline int inception_make_model(const char *dir, const char *variant, ims_convert_arch arch, const char *tmpdir,
                                char *isw, size_t isw_size)
{
    char path[1024], ckpt[1024];
    gen_tensor *ts = calloc(600, sizeof *ts);
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
