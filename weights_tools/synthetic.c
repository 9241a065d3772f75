/* synthetic.c: a full-size torchvision Inception-v3 filled with synthetic
 * weights, for machines that cannot download the published checkpoint (the
 * demo says so), for benchmarks, and for end-to-end tests.
 *
 * The weights come from the generator of tests/fixtures/inception_golden/
 * make_golden.py (which documents it): element i (1-based) of tensor `name` is
 * lo + (hi - lo) * u_i, u_i = (splitmix64 output i from seed fnv1a64(name)) >>
 * 11 / 2^53, with (lo, hi) from the tensor's role and fan-in (He-like scaling,
 * so activations stay O(1) through the 94 layers). The checkpoint is built as a
 * safetensors image in memory and converted like any other (BN folding,
 * transform_input folding), and the file says "synthetic" = 1: every tool that
 * loads it warns that its results are not meaningful.
 */
#include "synthetic.h"

#include "checkpoint.h"
#include "convert.h"
#include "weights_writer.h"

#include "core/error.h"
#include "models/inception_v3_arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* torchvision's Inception-v3 widths: (out, in) channels of each BasicConv2d in
 * the order of imsi_iv3_blocks() (the order of torchvision/models/inception.py). */
static const int16_t tv_channels[IV3_LAYER_COUNT][2] = {
    {32, 3},    {32, 32},   {64, 32},   {80, 64},   {192, 80},  {64, 192},  {48, 192},  {64, 48},
    {64, 192},  {96, 64},   {96, 96},   {32, 192},  {64, 256},  {48, 256},  {64, 48},   {64, 256},
    {96, 64},   {96, 96},   {64, 256},  {64, 288},  {48, 288},  {64, 48},   {64, 288},  {96, 64},
    {96, 96},   {64, 288},  {384, 288}, {64, 288},  {96, 64},   {96, 96},   {192, 768}, {128, 768},
    {128, 128}, {192, 128}, {128, 768}, {128, 128}, {128, 128}, {128, 128}, {192, 128}, {192, 768},
    {192, 768}, {160, 768}, {160, 160}, {192, 160}, {160, 768}, {160, 160}, {160, 160}, {160, 160},
    {192, 160}, {192, 768}, {192, 768}, {160, 768}, {160, 160}, {192, 160}, {160, 768}, {160, 160},
    {160, 160}, {160, 160}, {192, 160}, {192, 768}, {192, 768}, {192, 768}, {192, 192}, {192, 192},
    {192, 768}, {192, 192}, {192, 192}, {192, 192}, {192, 192}, {192, 768}, {192, 768}, {320, 192},
    {192, 768}, {192, 192}, {192, 192}, {192, 192}, {320, 1280}, {384, 1280}, {384, 384}, {384, 384},
    {448, 1280}, {384, 448}, {384, 384}, {384, 384}, {192, 1280}, {320, 2048}, {384, 2048}, {384, 384},
    {384, 384}, {448, 2048}, {384, 448}, {384, 384}, {384, 384}, {192, 2048},
};

enum { TV_CLASSES = 1000, TV_FEATURES = 2048 };

uint64_t imsi_synth_fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

double imsi_synth_uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* make_golden.py's value_range(). */
static void value_range(synth_tensor *t)
{
    const char *n = t->name;
    size_t len = strlen(n);
#define ENDS(s) (len >= strlen(s) && !strcmp(n + len - strlen(s), s))
    if (ENDS("conv.weight")) {
        t->hi = sqrt(6.0 / (double)(t->shape[1] * t->shape[2] * t->shape[3]));
        t->lo = -t->hi;
    } else if (ENDS("bn.weight")) {
        t->lo = 0.5, t->hi = 1.5;
    } else if (ENDS("bn.bias") || ENDS("bn.running_mean")) {
        t->lo = -0.25, t->hi = 0.25;
    } else if (ENDS("bn.running_var")) {
        t->lo = 0.5, t->hi = 2.0;
    } else if (!strcmp(n, "fc.weight")) {
        t->hi = sqrt(3.0 / (double)t->shape[1]);
        t->lo = -t->hi;
    } else { /* fc.bias */
        t->lo = -0.1, t->hi = 0.1;
    }
#undef ENDS
}

static void add_tensor(synth_tensor *ts, int *n, const char *layer, const char *suffix, int ndim, const int64_t *shape)
{
    synth_tensor *t = &ts[(*n)++];
    snprintf(t->name, sizeof t->name, "%s%s%s", layer, *suffix ? "." : "", suffix);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++)
        t->numel *= t->shape[d] = shape[d];
    value_range(t);
}

/* AuxLogits are left out: the converter ignores them anyway. */
int imsi_synth_inception_v3_tensors(synth_tensor *ts)
{
    int n = 0, k = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT; bi++) {
        const iv3_block *b = &imsi_iv3_blocks()[bi];
        for (int li = 0; li < b->layer_count; li++, k++) {
            char layer[80];
            imsi_iv3_layer_name(b, &b->layers[li], layer, sizeof layer);
            int64_t o = tv_channels[k][0], i = tv_channels[k][1];
            add_tensor(ts, &n, layer, "conv.weight", 4, (int64_t[]){o, i, b->layers[li].kh, b->layers[li].kw});
            add_tensor(ts, &n, layer, "bn.weight", 1, &o);
            add_tensor(ts, &n, layer, "bn.bias", 1, &o);
            add_tensor(ts, &n, layer, "bn.running_mean", 1, &o);
            add_tensor(ts, &n, layer, "bn.running_var", 1, &o);
        }
    }
    add_tensor(ts, &n, "fc", "weight", 2, (int64_t[]){TV_CLASSES, TV_FEATURES});
    add_tensor(ts, &n, "fc", "bias", 1, (int64_t[]){TV_CLASSES});
    return n;
}

/* A growing buffer; buf_put returns 0 when out of memory. */
typedef struct byte_buf {
    unsigned char *p;
    size_t len, cap;
} byte_buf;

static int buf_put(byte_buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 4096;
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 1;
}

/* u64 header length, the JSON header (padded to 8 bytes), the f32 data. */
ims_status imsi_synth_safetensors(const synth_tensor *ts, int n, unsigned char **image, size_t *size, ims_error *err)
{
    *image = NULL;
    *size = 0;
    byte_buf image_buf = {0}, *out = &image_buf;
    byte_buf hdr = {0};
    char piece[256];
    uint64_t off = 0;
    int ok = buf_put(&hdr, "{", 1);
    for (int i = 0; ok && i < n; i++) {
        int len = snprintf(piece, sizeof piece, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", ts[i].name);
        ok = buf_put(&hdr, piece, (size_t)len);
        for (int d = 0; ok && d < ts[i].ndim; d++) {
            len = snprintf(piece, sizeof piece, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
            ok = buf_put(&hdr, piece, (size_t)len);
        }
        uint64_t end = off + (uint64_t)ts[i].numel * 4;
        len = snprintf(piece, sizeof piece, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                       (unsigned long long)end);
        ok = ok && buf_put(&hdr, piece, (size_t)len);
        off = end;
    }
    ok = ok && buf_put(&hdr, "}", 1);
    while (ok && hdr.len % 8)
        ok = buf_put(&hdr, " ", 1);
    unsigned char le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (unsigned char)((uint64_t)hdr.len >> (8 * b));
    ok = ok && buf_put(out, le, 8) && buf_put(out, hdr.p, hdr.len);
    free(hdr.p);
    for (int i = 0; ok && i < n; i++) {
        uint64_t state = imsi_synth_fnv1a64(ts[i].name);
        for (int64_t j = 0; ok && j < ts[i].numel; j++) {
            float v = (float)(ts[i].lo + (ts[i].hi - ts[i].lo) * imsi_synth_uniform(&state));
            unsigned char bytes[4];
            memcpy(bytes, &v, 4); /* little-endian host: the safetensors order */
            ok = buf_put(out, bytes, 4);
        }
    }
    if (!ok) {
        free(image_buf.p);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory building synthetic weights");
    }
    *image = image_buf.p;
    *size = image_buf.len;
    return IMS_OK;
}

ims_status ims_convert_synthetic(ims_convert_arch arch, const char *output, const ims_convert_options *o,
                                 ims_convert_report *report, ims_error *err)
{
    memset(report, 0, sizeof *report);
    if (arch != IMS_CONVERT_ARCH_INCEPTION_V3)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "synthetic weights exist for inception_v3 only, not %s",
                             ims_convert_arch_name(arch));
    synth_tensor *ts = malloc(SYNTH_INCEPTION_V3_TENSORS * sizeof *ts);
    unsigned char *image = NULL;
    size_t image_size = 0;
    ims_status st = ts ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    int n = st ? 0 : imsi_synth_inception_v3_tensors(ts);
    if (!st)
        st = imsi_synth_safetensors(ts, n, &image, &image_size, err);
    ckpt *c = NULL;
    if (!st)
        st = imsi_ckpt_open_memory(image, image_size, &c, err);
    ims_convert_options opts = *o;
    opts.source = "synthetic weights (imgsearch convert --synthetic): not a trained model, results are not meaningful";
    if (!st) {
        report->format = "synthetic";
        report->tensors_in = c->count;
        report->arch = arch;
        st = imsi_convert_checkpoint_to_file(c, arch, &opts, 1, output, report, err);
    }
    struct stat sb;
    if (!st && stat(output, &sb) == 0)
        report->bytes_out = (uint64_t)sb.st_size;
    imsi_ckpt_free(c);
    free(image);
    free(ts);
    return st;
}
