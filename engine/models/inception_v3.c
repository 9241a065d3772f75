/* inception_v3.c: the Inception-v3 eval graph as plain C over backend ops.
 *
 * It does not know which backend runs it: every step is an imsi_op_* call on
 * NHWC tensors (B, H, W, C). Layers come from the table in
 * inception_v3_arch.c, channel counts from the weight file (so narrower test
 * models run too). BatchNorm is already folded into each convolution, so a
 * layer is one conv2d with bias and ReLU.
 *
 * Buffers: five activation buffers, each large enough for the widest
 * activation of one image times the batch capacity. A block reads `in`,
 * writes `out` (each branch into its channel slice: the concatenation costs
 * nothing), and uses two temporaries for branch chains and one for the pooled
 * input of the pool branch. The next block's `in` is this block's `out`.
 *
 * Variants (metadata): torchvision's average pools count the padding
 * (count_include_pad=True); pytorch-fid's do not, and its Mixed_7c pool
 * branch is a max pool.
 */
#include "models/inception_v3.h"

#include "core/error.h"
#include "models/inception_v3_arch.h"
#include "models/weights_upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IV3_BUFFERS 5
#define IV3_GRAPHS 8 /* batch sizes with a captured forward */

/* A captured forward for one batch size and input kind (CUDA graphs). */
typedef struct iv3_graph {
    int batch, from_u8, runs; /* runs: plain forwards so far (the first finds the cuDNN plans) */
    int failed;               /* capture failed: always plain */
    int relaunch_failures;    /* graphs the backend refused to replay */
    void *graph;
    int where; /* the buffer that holds Mixed_7c */
} iv3_graph;

typedef struct iv3_conv {
    imsi_tensor w; /* (O, KH, KW, I) act dtype */
    imsi_tensor b; /* (O) act dtype */
    int stride, pad_h, pad_w;
} iv3_conv;

struct ims_image_encoder {
    ims_backend *be;
    ims_precision precision;
    ims_dtype act; /* f32, or f16 with IMS_PRECISION_FP16 */
    iv3_conv convs[IV3_LAYER_COUNT];
    imsi_tensor fc_w, fc_b; /* (classes, features), (classes) f32 */
    int classes, features, image_size;
    int count_include_pad, mixed_7c_max;
    ims_preprocess_mode mode;
    float scale[3], shift[3]; /* u8 -> normalized input */
    char **labels;            /* (classes) or NULL */
    int64_t block_shape[IV3_BLOCK_COUNT][3]; /* (H, W, C) per image */
    int64_t max_elems;                       /* widest activation of one image */
    int capacity;                            /* batch the buffers hold */
    imsi_tensor in_u8, in_f32, in_act, buf[IV3_BUFFERS], feat, logits;
    int use_graphs;
    iv3_graph graphs[IV3_GRAPHS];
};

/* ---- Block names ------------------------------------------------------------------------ */

static const char *const block_names[IV3_BLOCK_COUNT] = {
    "stem", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
};

/* ---- Loading ------------------------------------------------------------------------- */

static ims_status find_float_tensor(const ims_weights *w, const char *name, int ndim, const int64_t *shape,
                                    const ims_weight_tensor **out, ims_error *err)
{
    const ims_weight_tensor *t = ims_weights_tensor_find(w, name);
    if (!t)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "weight file has no tensor '%s'", name);
    int ok = (t->dtype == IMS_DTYPE_F32 || t->dtype == IMS_DTYPE_F16) && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] < 0 || t->shape[d] == shape[d];
    if (!ok)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s' is %s with %d dims (%lld, ...), not what Inception-v3 needs",
                             name, ims_dtype_name(t->dtype), t->ndim, (long long)t->shape[0]);
    *out = t;
    return IMS_OK;
}

static ims_status load_layer(ims_image_encoder *enc, const ims_weights *w, const iv3_block *b, const iv3_layer *l,
                             iv3_conv *cv, int64_t *out_in, ims_error *err)
{
    char layer[96], name[128];
    imsi_iv3_layer_name(b, l, layer, sizeof layer);
    snprintf(name, sizeof name, "%s.weight", layer);
    const ims_weight_tensor *wt, *bt;
    ims_status st = find_float_tensor(w, name, 4, (int64_t[]){-1, l->kh, l->kw, -1}, &wt, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.bias", layer);
    st = find_float_tensor(w, name, 1, (int64_t[]){wt->shape[0]}, &bt, err);
    if (st)
        return st;
    out_in[0] = wt->shape[0];
    out_in[1] = wt->shape[3];
    st = imsi_weights_upload(enc->be, wt, enc->act, &cv->w, err);
    if (!st) st = imsi_weights_upload(enc->be, bt, enc->act, &cv->b, err);
    cv->stride = l->stride, cv->pad_h = l->pad_h, cv->pad_w = l->pad_w;
    return st;
}

static ims_status load_metadata(ims_image_encoder *enc, const ims_weights *w, ims_error *err)
{
    ims_str arch;
    ims_status st = ims_weights_get_string(w, "architecture", &arch, err);
    if (st)
        return st;
    if (arch.len < 12 || memcmp(arch.ptr, "inception_v3", 12) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "weight file holds '%.*s', not an Inception-v3", (int)arch.len, arch.ptr);
    int64_t classes, features, size, include_pad;
    ims_str pool7c, mode;
    double mean[3], std[3];
    st = ims_weights_get_i64(w, "inception.num_classes", &classes, err);
    if (!st) st = ims_weights_get_i64(w, "inception.features", &features, err);
    if (!st) st = ims_weights_get_i64(w, "inception.avgpool_count_include_pad", &include_pad, err);
    if (!st) st = ims_weights_get_string(w, "inception.mixed_7c_pool", &pool7c, err);
    if (!st) st = ims_weights_get_string(w, "preprocess.mode", &mode, err);
    if (!st) st = ims_weights_get_i64(w, "preprocess.image_size", &size, err);
    if (!st) st = ims_weights_get_f64_array(w, "preprocess.mean", mean, 3, err);
    if (!st) st = ims_weights_get_f64_array(w, "preprocess.std", std, 3, err);
    if (st)
        return st;
    if (classes < 1 || classes > 1000000 || features < 1 || features > 1000000 || size < 75 || size > 4096)
        return ims_error_set(err, IMS_ERR_FORMAT, "inception: %lld classes, %lld features, image size %lld",
                             (long long)classes, (long long)features, (long long)size);
    enc->classes = (int)classes, enc->features = (int)features, enc->image_size = (int)size;
    enc->count_include_pad = include_pad != 0;
    enc->mixed_7c_max = pool7c.len == 3 && !memcmp(pool7c.ptr, "max", 3);
    enc->mode = mode.len == 3 && !memcmp(mode.ptr, "fid", 3) ? IMS_PREPROCESS_FID : IMS_PREPROCESS_TORCHVISION;
    for (int c = 0; c < 3; c++) {
        if (!(std[c] > 0.0))
            return ims_error_set(err, IMS_ERR_FORMAT, "preprocess.std[%d] is %g", c, std[c]);
        enc->scale[c] = (float)(1.0 / (255.0 * std[c]));
        enc->shift[c] = (float)(-mean[c] / std[c]);
    }
    const ims_str *labels;
    size_t count;
    if (ims_weights_get_strings(w, "labels", &labels, &count, NULL) == IMS_OK && count == (size_t)classes) {
        if (!(enc->labels = calloc(count, sizeof *enc->labels)))
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < count; i++) {
            if (!(enc->labels[i] = malloc(labels[i].len + 1)))
                return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            memcpy(enc->labels[i], labels[i].ptr, labels[i].len);
            enc->labels[i][labels[i].len] = '\0';
        }
    }
    return IMS_OK;
}

/* Per-image output shapes of every block, and the widest activation. */
static ims_status plan_shapes(ims_image_encoder *enc, const int64_t (*out_in)[2], ims_error *err)
{
    int64_t h = enc->image_size, w = enc->image_size, c = 3, widest = h * w * c;
    int k = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT; bi++) {
        const iv3_block *b = &imsi_iv3_blocks()[bi];
        int64_t bh = h, bw = w, concat = 0, oh = h, ow = w;
        for (int li = 0; li < b->layer_count; li++, k++) {
            const iv3_layer *l = &b->layers[li];
            if (b->kind == IV3_STEM) {
                h = imsi_conv_out_size(h, l->kh, l->stride, l->pad_h);
                w = imsi_conv_out_size(w, l->kw, l->stride, l->pad_w);
                c = out_in[k][0];
                if (h < 1 || w < 1)
                    return ims_error_set(err, IMS_ERR_FORMAT, "image size %d is too small for Inception-v3", enc->image_size);
                widest = h * w * c > widest ? h * w * c : widest;
                if (l->maxpool_after) {
                    h = imsi_conv_out_size(h, 3, 2, 0);
                    w = imsi_conv_out_size(w, 3, 2, 0);
                }
                continue;
            }
            int64_t lh = imsi_conv_out_size(bh, l->kh, l->stride, l->pad_h);
            int64_t lw = imsi_conv_out_size(bw, l->kw, l->stride, l->pad_w);
            if (l->input == IV3_IN_PREV) {
                lh = imsi_conv_out_size(oh, l->kh, l->stride, l->pad_h);
                lw = imsi_conv_out_size(ow, l->kw, l->stride, l->pad_w);
            } else if (l->input == IV3_IN_SIBLING) {
                lh = oh, lw = ow; /* the siblings are shape-preserving (1x3 / 3x1, pad 1) */
            }
            if (lh < 1 || lw < 1)
                return ims_error_set(err, IMS_ERR_FORMAT, "image size %d is too small for Inception-v3", enc->image_size);
            if (l->input != IV3_IN_SIBLING)
                oh = lh, ow = lw;
            widest = lh * lw * out_in[k][0] > widest ? lh * lw * out_in[k][0] : widest;
            if (l->ends_branch)
                concat += out_in[k][0], h = lh, w = lw;
        }
        if (b->kind != IV3_STEM) {
            if (b->pool_passthrough)
                concat += c;
            c = concat;
        }
        widest = h * w * c > widest ? h * w * c : widest;
        enc->block_shape[bi][0] = h, enc->block_shape[bi][1] = w, enc->block_shape[bi][2] = c;
    }
    if (c != enc->features)
        return ims_error_set(err, IMS_ERR_FORMAT, "inception.features is %d, but Mixed_7c gives %lld", enc->features,
                             (long long)c);
    enc->max_elems = widest;
    return IMS_OK;
}

ims_status ims_image_encoder_create(ims_backend *be, const ims_weights *w, ims_precision p, ims_image_encoder **out,
                                    ims_error *err)
{
    *out = NULL;
    if (p < IMS_PRECISION_FP32 || p > IMS_PRECISION_FP16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "unknown precision %d", (int)p);
    if (imsi_backend_memory(be) == IMS_MEMORY_HOST && p != IMS_PRECISION_FP32)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "the CPU backend runs fp32 only, not %s", ims_precision_name(p));
    ims_image_encoder *enc = calloc(1, sizeof *enc);
    if (!enc)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    enc->be = be;
    enc->precision = p;
    enc->act = p == IMS_PRECISION_FP16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    ims_status st = load_metadata(enc, w, err);
    int64_t out_in[IV3_LAYER_COUNT][2];
    int k = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT && !st; bi++) {
        const iv3_block *b = &imsi_iv3_blocks()[bi];
        for (int li = 0; li < b->layer_count && !st; li++, k++)
            st = load_layer(enc, w, b, &b->layers[li], &enc->convs[k], out_in[k], err);
    }
    int64_t features = 0;
    if (!st) st = imsi_iv3_check_channels((const int64_t(*)[2])out_in, &features, err);
    if (!st) st = plan_shapes(enc, (const int64_t(*)[2])out_in, err);
    const ims_weight_tensor *fw = NULL, *fb = NULL;
    if (!st) st = find_float_tensor(w, "fc.weight", 2, (int64_t[]){enc->classes, enc->features}, &fw, err);
    if (!st) st = find_float_tensor(w, "fc.bias", 1, (int64_t[]){enc->classes}, &fb, err);
    if (!st) st = imsi_weights_upload(be, fw, IMS_DTYPE_F32, &enc->fc_w, err);
    if (!st) st = imsi_weights_upload(be, fb, IMS_DTYPE_F32, &enc->fc_b, err);
    if (st) {
        ims_image_encoder_free(enc);
        return imsi_error_prefix(err, st, "Inception-v3 encoder");
    }
    *out = enc;
    return IMS_OK;
}

static void free_graphs(ims_image_encoder *enc)
{
    for (int i = 0; i < IV3_GRAPHS; i++)
        imsi_backend_graph_free(enc->be, enc->graphs[i].graph);
    memset(enc->graphs, 0, sizeof enc->graphs);
}

/* Graphs replay on fixed buffers: freeing the buffers frees them too. */
static void free_buffers(ims_image_encoder *enc)
{
    free_graphs(enc);
    imsi_tensor_free(&enc->in_u8);
    imsi_tensor_free(&enc->in_f32);
    imsi_tensor_free(&enc->in_act);
    for (int i = 0; i < IV3_BUFFERS; i++)
        imsi_tensor_free(&enc->buf[i]);
    imsi_tensor_free(&enc->feat);
    imsi_tensor_free(&enc->logits);
    enc->capacity = 0;
}

void ims_image_encoder_free(ims_image_encoder *enc)
{
    if (!enc)
        return;
    free_buffers(enc);
    for (int k = 0; k < IV3_LAYER_COUNT; k++) {
        imsi_tensor_free(&enc->convs[k].w);
        imsi_tensor_free(&enc->convs[k].b);
    }
    imsi_tensor_free(&enc->fc_w);
    imsi_tensor_free(&enc->fc_b);
    for (int i = 0; enc->labels && i < enc->classes; i++)
        free(enc->labels[i]);
    free(enc->labels);
    free(enc);
}

/* Grows the buffers to hold `batch` images. */
static ims_status reserve(ims_image_encoder *enc, int batch, ims_error *err)
{
    if (batch <= enc->capacity)
        return IMS_OK;
    free_buffers(enc);
    int64_t s = enc->image_size;
    ims_status st = imsi_tensor_alloc(enc->be, IMS_DTYPE_U8, 4, (int64_t[]){batch, s, s, 3}, &enc->in_u8, err);
    if (!st) st = imsi_tensor_alloc(enc->be, IMS_DTYPE_F32, 4, (int64_t[]){batch, s, s, 3}, &enc->in_f32, err);
    if (!st && enc->act != IMS_DTYPE_F32)
        st = imsi_tensor_alloc(enc->be, enc->act, 4, (int64_t[]){batch, s, s, 3}, &enc->in_act, err);
    for (int i = 0; i < IV3_BUFFERS && !st; i++)
        st = imsi_tensor_alloc(enc->be, enc->act, 2, (int64_t[]){batch, enc->max_elems}, &enc->buf[i], err);
    if (!st) st = imsi_tensor_alloc(enc->be, IMS_DTYPE_F32, 2, (int64_t[]){batch, enc->features}, &enc->feat, err);
    if (!st) st = imsi_tensor_alloc(enc->be, IMS_DTYPE_F32, 2, (int64_t[]){batch, enc->classes}, &enc->logits, err);
    /* Zeroed once on a device: cuDNN's fused call takes y as its (alpha2 = 0)
     * residual input too, so fresh memory holding NaN bit patterns must not be
     * able to leak in. The CPU's kernels never read an output before writing
     * it, and zeroing 5 x 88 MB at batch 16 cost a first call ~100 ms. */
    for (int i = 0; i < IV3_BUFFERS && !st && imsi_backend_memory(enc->be) != IMS_MEMORY_HOST; i++)
        st = imsi_backend_fill_bytes(enc->be, &enc->buf[i], 0, err);
    if (st) {
        free_buffers(enc);
        return st;
    }
    enc->capacity = batch;
    return IMS_OK;
}

/* ---- The forward pass ------------------------------------------------------------------ */

static ims_status conv(ims_image_encoder *enc, const iv3_conv *cv, const imsi_tensor *x, const imsi_tensor *ybuf,
                       int64_t y_channels, int offset, ims_error *err)
{
    int64_t oh = imsi_conv_out_size(x->shape[1], (int)cv->w.shape[1], cv->stride, cv->pad_h);
    int64_t ow = imsi_conv_out_size(x->shape[2], (int)cv->w.shape[2], cv->stride, cv->pad_w);
    imsi_tensor y = imsi_tensor_view(ybuf, 4, x->shape[0], oh, ow, y_channels);
    imsi_conv2d_params p = {cv->stride, cv->stride, cv->pad_h, cv->pad_w, 1, offset, enc->precision};
    return imsi_op_conv2d(enc->be, &p, x, &cv->w, &cv->b, &y, err);
}

static ims_status pool(ims_image_encoder *enc, imsi_pool_kind kind, int stride, int pad, int include_pad,
                       const imsi_tensor *x, const imsi_tensor *ybuf, int64_t y_channels, int offset, ims_error *err)
{
    int64_t oh = imsi_conv_out_size(x->shape[1], 3, stride, pad), ow = imsi_conv_out_size(x->shape[2], 3, stride, pad);
    imsi_tensor y = imsi_tensor_view(ybuf, 4, x->shape[0], oh, ow, y_channels);
    imsi_pool2d_params p = {kind, 3, stride, pad, include_pad, offset};
    return imsi_op_pool2d(enc->be, &p, x, &y, err);
}

/* The stem: x (B, S, S, 3) -> buf[*cur] (B, 35, 35, 192 for the real model). */
static ims_status run_stem(ims_image_encoder *enc, const imsi_tensor *x, int *cur, int *k, ims_error *err)
{
    const iv3_block *b = &imsi_iv3_blocks()[0];
    imsi_tensor in = *x;
    int next = 0;
    for (int li = 0; li < b->layer_count; li++, (*k)++) {
        const iv3_conv *cv = &enc->convs[*k];
        ims_status st = conv(enc, cv, &in, &enc->buf[next], cv->w.shape[0], 0, err);
        if (st)
            return st;
        in = imsi_tensor_view(&enc->buf[next], 4, in.shape[0],
                              imsi_conv_out_size(in.shape[1], (int)cv->w.shape[1], cv->stride, cv->pad_h),
                              imsi_conv_out_size(in.shape[2], (int)cv->w.shape[2], cv->stride, cv->pad_w),
                              cv->w.shape[0]);
        next ^= 1;
        if (b->layers[li].maxpool_after) {
            st = pool(enc, IMS_POOL_MAX, 2, 0, 1, &in, &enc->buf[next], in.shape[3], 0, err);
            if (st)
                return st;
            in = imsi_tensor_view(&enc->buf[next], 4, in.shape[0], imsi_conv_out_size(in.shape[1], 3, 2, 0),
                                  imsi_conv_out_size(in.shape[2], 3, 2, 0), in.shape[3]);
            next ^= 1;
        }
    }
    *cur = next ^ 1;
    return IMS_OK;
}

/* One Mixed block: buf[in_i] (B, H, W, C) -> buf[*out_i] (B, OH, OW, Ctot). */
static ims_status run_block(ims_image_encoder *enc, int bi, int batch, int in_i, int *out_i, int *k, ims_error *err)
{
    const iv3_block *b = &imsi_iv3_blocks()[bi];
    int o = (in_i + 1) % IV3_BUFFERS, t1 = (in_i + 2) % IV3_BUFFERS, t2 = (in_i + 3) % IV3_BUFFERS,
        pb = (in_i + 4) % IV3_BUFFERS;
    const int64_t *is = bi ? enc->block_shape[bi - 1] : NULL;
    int64_t ctot = enc->block_shape[bi][2];
    imsi_tensor in = imsi_tensor_view(&enc->buf[in_i], 4, batch, is[0], is[1], is[2]);
    imsi_tensor prev_src = in, prev_out = in, pooled;
    int offset = 0;
    for (int li = 0; li < b->layer_count; li++, (*k)++) {
        const iv3_layer *l = &b->layers[li];
        const iv3_conv *cv = &enc->convs[*k];
        imsi_tensor src = in;
        ims_status st = IMS_OK;
        if (l->input == IV3_IN_PREV) {
            src = prev_out;
        } else if (l->input == IV3_IN_SIBLING) {
            src = prev_src;
        } else if (l->input == IV3_IN_POOL) {
            int max = bi == IV3_BLOCK_COUNT - 1 && enc->mixed_7c_max;
            st = pool(enc, max ? IMS_POOL_MAX : IMS_POOL_AVG, 1, 1, enc->count_include_pad, &in, &enc->buf[pb],
                      is[2], 0, err);
            pooled = imsi_tensor_view(&enc->buf[pb], 4, batch, is[0], is[1], is[2]);
            src = pooled;
        }
        if (st)
            return st;
        int64_t oh = imsi_conv_out_size(src.shape[1], (int)cv->w.shape[1], cv->stride, cv->pad_h);
        int64_t ow = imsi_conv_out_size(src.shape[2], (int)cv->w.shape[2], cv->stride, cv->pad_w);
        int dst = l->ends_branch ? o : (src.data == enc->buf[t1].data ? t2 : t1);
        int64_t channels = l->ends_branch ? ctot : cv->w.shape[0];
        st = conv(enc, cv, &src, &enc->buf[dst], channels, l->ends_branch ? offset : 0, err);
        if (st)
            return st;
        if (l->ends_branch)
            offset += (int)cv->w.shape[0];
        prev_src = src;
        prev_out = imsi_tensor_view(&enc->buf[dst], 4, batch, oh, ow, cv->w.shape[0]);
    }
    if (b->pool_passthrough) {
        ims_status st = pool(enc, IMS_POOL_MAX, 2, 0, 1, &in, &enc->buf[o], ctot, offset, err);
        if (st)
            return st;
    }
    *out_i = o;
    return IMS_OK;
}

/* Runs blocks 0..last on x (B, S, S, 3) act dtype; *where = the buffer holding block last's output. */
static ims_status run_blocks(ims_image_encoder *enc, const imsi_tensor *x, int last, int *where, ims_error *err)
{
    int cur = 0, k = 0;
    int batch = (int)x->shape[0];
    ims_status st = run_stem(enc, x, &cur, &k, err);
    for (int bi = 1; bi <= last && !st; bi++) {
        int out = 0;
        st = run_block(enc, bi, batch, cur, &out, &k, err);
        if (st)
            st = imsi_error_prefix(err, st, "%s", block_names[bi]);
        cur = out;
    }
    *where = cur;
    return st;
}

/* The API takes int64_t batches; past this check a batch fits an int. */
static ims_status check_batch(const ims_image_encoder *enc, const void *images, int64_t batch, ims_error *err)
{
    if (!images || batch < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image encoder: %lld images at %p", (long long)batch, images);
    if (batch > 65536) /* far beyond any GPU's memory at 299 x 299; keeps every size product small */
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image encoder: batch %lld is too large (at most 65536)",
                             (long long)batch);
    return IMS_OK;
}

/* The device part of a forward, from the uploaded input to the logits: no
 * copies or synchronization, so it can be captured. */
static ims_status run_ops(ims_image_encoder *enc, int batch, int from_u8, int *where, ims_error *err)
{
    int64_t s = enc->image_size;
    imsi_tensor x = imsi_tensor_view(enc->act == IMS_DTYPE_F32 ? &enc->in_f32 : &enc->in_act, 4, batch, s, s, 3);
    ims_status st = IMS_OK;
    if (from_u8) {
        imsi_tensor u8 = imsi_tensor_view(&enc->in_u8, 4, batch, s, s, 3);
        st = imsi_op_input_u8(enc->be, &u8, enc->scale, enc->shift, &x, err);
    } else if (enc->act != IMS_DTYPE_F32) {
        imsi_tensor xf = imsi_tensor_view(&enc->in_f32, 4, batch, s, s, 3);
        st = imsi_op_convert(enc->be, &xf, &x, err);
    }
    if (!st) st = run_blocks(enc, &x, IV3_BLOCK_COUNT - 1, where, err);
    const int64_t *fs = enc->block_shape[IV3_BLOCK_COUNT - 1];
    imsi_tensor y7 = imsi_tensor_view(&enc->buf[*where], 4, batch, fs[0], fs[1], fs[2]);
    imsi_tensor f = imsi_tensor_view(&enc->feat, 2, batch, enc->features, 1, 1);
    imsi_tensor y = imsi_tensor_view(&enc->logits, 2, batch, enc->classes, 1, 1);
    if (!st) st = imsi_op_global_avg_pool(enc->be, &y7, &f, err);
    if (!st) st = imsi_op_linear(enc->be, &f, &enc->fc_w, &enc->fc_b, &y, err);
    return st;
}

/* One capture of run_ops into g. Whatever fails (the capture itself, or an
 * op that cannot be captured: the capture is always ended), the graph is
 * marked failed and never tried again; the caller runs the forward plainly. */
static void capture_forward(ims_image_encoder *enc, iv3_graph *g, int batch, int from_u8)
{
    ims_error err = {0}, end_err = {0};
    void *graph = NULL;
    ims_status st = imsi_backend_capture_begin(enc->be, &err);
    if (!st) {
        ims_status run = run_ops(enc, batch, from_u8, &g->where, &err);
        ims_status end = imsi_backend_capture_end(enc->be, &graph, &end_err);
        st = run ? run : end;
    }
    if (st) {
        imsi_backend_graph_free(enc->be, graph);
        g->failed = 1;
        return;
    }
    g->graph = graph;
}

/* run_ops, replayed from a captured graph once this batch size has run
 * plainly (the first run chooses the cuDNN algorithms, which cannot be
 * captured). A capture that fails leaves the batch size to plain runs; a
 * graph the backend no longer replays (its scratch memory moved) is dropped
 * and captured again after the next plain run, twice at most. */
static ims_status run_forward(ims_image_encoder *enc, int batch, int from_u8, ims_error *err)
{
    int where = 0;
    if (!enc->use_graphs)
        return run_ops(enc, batch, from_u8, &where, err);
    iv3_graph *g = NULL;
    for (int i = 0; i < IV3_GRAPHS && !g; i++)
        if (enc->graphs[i].batch == batch && enc->graphs[i].from_u8 == from_u8)
            g = &enc->graphs[i];
    for (int i = 0; i < IV3_GRAPHS && !g; i++)
        if (enc->graphs[i].batch == 0) {
            g = &enc->graphs[i];
            g->batch = batch, g->from_u8 = from_u8;
        }
    if (g && !g->graph && !g->failed && g->runs >= 1)
        capture_forward(enc, g, batch, from_u8);
    if (g && g->graph) {
        ims_error launch_err = {0};
        if (imsi_backend_graph_launch(enc->be, g->graph, &launch_err) == IMS_OK)
            return IMS_OK;
        imsi_backend_graph_free(enc->be, g->graph);
        g->graph = NULL;
        g->runs = 0;
        g->failed = ++g->relaunch_failures >= 2;
    }
    if (g)
        g->runs++;
    return run_ops(enc, batch, from_u8, &where, err);
}

static ims_status download_outputs(ims_image_encoder *enc, int batch, float *features, float *logits, ims_error *err)
{
    imsi_tensor f = imsi_tensor_view(&enc->feat, 2, batch, enc->features, 1, 1);
    imsi_tensor y = imsi_tensor_view(&enc->logits, 2, batch, enc->classes, 1, 1);
    ims_status st = IMS_OK;
    if (features) st = imsi_backend_download(enc->be, features, imsi_tensor_nbytes(&f), &f, err);
    if (!st && logits) st = imsi_backend_download(enc->be, logits, imsi_tensor_nbytes(&y), &y, err);
    return st;
}

/* One forward from host images: uint8 crops (from_u8) or normalized floats. */
static ims_status forward_host(ims_image_encoder *enc, const void *images, int64_t batch64, int from_u8,
                               float *features, float *logits, ims_error *err)
{
    ims_status st = check_batch(enc, images, batch64, err);
    int batch = (int)batch64;
    if (!st) st = reserve(enc, batch, err);
    if (st)
        return st;
    int64_t s = enc->image_size;
    size_t elem = from_u8 ? 1 : sizeof(float);
    imsi_tensor x = imsi_tensor_view(from_u8 ? &enc->in_u8 : &enc->in_f32, 4, batch, s, s, 3);
    st = imsi_backend_upload(enc->be, &x, images, (size_t)batch * s * s * 3 * elem, err);
    if (!st) st = run_forward(enc, batch, from_u8, err);
    if (!st) st = download_outputs(enc, batch, features, logits, err);
    return st;
}

ims_status ims_image_encoder_forward(ims_image_encoder *enc, const uint8_t *images, int64_t batch, float *features,
                                     float *logits, ims_error *err)
{
    return forward_host(enc, images, batch, 1, features, logits, err);
}

ims_status ims_image_encoder_forward_f32(ims_image_encoder *enc, const float *images, int64_t batch, float *features,
                                         float *logits, ims_error *err)
{
    return forward_host(enc, images, batch, 0, features, logits, err);
}

ims_status imsi_image_encoder_set_graphs(ims_image_encoder *enc, int on, ims_error *err)
{
    if (on && !imsi_backend_has_graphs(enc->be))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s cannot capture graphs",
                             ims_backend_get_info(enc->be)->name);
    if (!on)
        free_graphs(enc);
    enc->use_graphs = on != 0;
    return IMS_OK;
}

ims_status imsi_image_encoder_block_shape(const ims_image_encoder *enc, int block, int64_t shape[3], ims_error *err)
{
    if (block < 0 || block >= IV3_BLOCK_COUNT)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "block %d out of range 0..%d", block, IV3_BLOCK_COUNT - 1);
    memcpy(shape, enc->block_shape[block], 3 * sizeof *shape);
    return IMS_OK;
}

ims_status imsi_image_encoder_forward_block(ims_image_encoder *enc, const uint8_t *images, int batch, int block,
                                            float *out, size_t count, ims_error *err)
{
    int64_t shape[3];
    ims_status st = imsi_image_encoder_block_shape(enc, block, shape, err);
    if (!st) st = check_batch(enc, images, batch, err);
    if (st)
        return st;
    size_t n = (size_t)batch * (size_t)(shape[0] * shape[1] * shape[2]);
    if (count < n)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "block %s output needs %zu floats, the buffer has %zu",
                             block_names[block], n, count);
    st = reserve(enc, batch, err);
    int64_t s = enc->image_size;
    imsi_tensor u8 = imsi_tensor_view(&enc->in_u8, 4, batch, s, s, 3);
    imsi_tensor x = imsi_tensor_view(enc->act == IMS_DTYPE_F32 ? &enc->in_f32 : &enc->in_act, 4, batch, s, s, 3);
    int where = 0;
    if (!st) st = imsi_backend_upload(enc->be, &u8, images, (size_t)batch * s * s * 3, err);
    if (!st) st = imsi_op_input_u8(enc->be, &u8, enc->scale, enc->shift, &x, err);
    if (!st) st = run_blocks(enc, &x, block, &where, err);
    if (st)
        return st;
    imsi_tensor y = imsi_tensor_view(&enc->buf[where], 4, batch, shape[0], shape[1], shape[2]);
    if (enc->act == IMS_DTYPE_F32)
        return imsi_backend_download(enc->be, out, n * sizeof *out, &y, err);
    /* f16 activations: widened on the host */
    uint16_t *h = malloc(n * sizeof *h);
    if (!h)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    st = imsi_backend_download(enc->be, h, n * sizeof *h, &y, err);
    for (size_t i = 0; !st && i < n; i++)
        out[i] = ims_f16_to_f32(h[i]);
    free(h);
    return st;
}

int ims_image_encoder_num_classes(const ims_image_encoder *enc) { return enc->classes; }
int ims_image_encoder_feature_dim(const ims_image_encoder *enc) { return enc->features; }
ims_preprocess_mode ims_image_encoder_mode(const ims_image_encoder *enc) { return enc->mode; }

ims_str ims_image_encoder_label(const ims_image_encoder *enc, int i)
{
    ims_str s = {NULL, 0};
    if (enc->labels && i >= 0 && i < enc->classes) {
        s.ptr = enc->labels[i];
        s.len = strlen(enc->labels[i]);
    }
    return s;
}
