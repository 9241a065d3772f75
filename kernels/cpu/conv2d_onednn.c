/* conv2d_onednn.c: the conv2d op on the CPU through oneDNN's convolution
 * primitives (the direct NHWC convolutions PyTorch itself runs on the CPU:
 * brgconv / jit kernels for AVX2 and AVX-512), bias and ReLU fused as a
 * post-op. conv2d.c (im2col + OpenBLAS sgemm) stays the reference path: the
 * backend falls back to it when oneDNN is absent, offers only its slow
 * reference kernel for a shape, or the backend is strict
 * (imsi_backend_cpu_set_strict, IMS_CPU_STRICT=1).
 *
 * A primitive is made once per shape and filter and cached with the filter
 * reordered into the layout the primitive chose ("any"); the filter's
 * pointer and a few of its values identify it, and the backend drops the
 * entries of a tensor it frees (imsi_onednn_forget), so a new model at the
 * same address gets new entries. The destination is dense NHWC: oneDNN's fast
 * kernels refuse a strided one (its reference kernel takes it, at ~1 GFLOP/s),
 * so a convolution that writes a channel slice of y (a block's concatenation)
 * goes through scratch and is copied into its slice.
 */
#include "ops_cpu.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef IMS_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

enum { FINGERPRINT = 8 }; /* filter values compared on every use */

typedef struct onednn_conv {
    imsi_cpu_conv2d_shape s;
    const float *w, *bias;
    int relu;
    float fingerprint[FINGERPRINT];
    int usable;              /* 0: oneDNN offers only its reference kernel: use conv2d.c */
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bia, dst; /* wei owns the reordered filter */
    struct onednn_conv *next;
} onednn_conv;

struct imsi_onednn {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    onednn_conv *convs;
};

static ims_status dnnl_error(dnnl_status_t s, const char *what, ims_error *err)
{
    /* Anything but memory: the caller falls back to the reference path. */
    return ims_error_set(err, s == dnnl_out_of_memory ? IMS_ERR_NOMEM : IMS_ERR_UNSUPPORTED, "oneDNN: %s failed (%d)",
                         what, (int)s);
}

#define DNNL_TRY(call, what)                                                                                           \
    do {                                                                                                               \
        dnnl_status_t s_ = (call);                                                                                     \
        if (s_ != dnnl_success) {                                                                                      \
            st = dnnl_error(s_, what, err);                                                                            \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)

ims_status imsi_onednn_create(imsi_onednn **out, ims_error *err)
{
    ims_status st = IMS_OK;
    imsi_onednn *d = calloc(1, sizeof *d);
    if (!d)
        return ims_error_set(err, IMS_ERR_NOMEM, "oneDNN: out of memory");
    DNNL_TRY(dnnl_engine_create(&d->engine, dnnl_cpu, 0), "engine_create");
    DNNL_TRY(dnnl_stream_create(&d->stream, d->engine, dnnl_stream_default_flags), "stream_create");
done:
    if (st) {
        imsi_onednn_free(d);
        d = NULL;
    }
    *out = d;
    return st;
}

static void conv_free(onednn_conv *c)
{
    dnnl_primitive_destroy(c->prim);
    dnnl_memory_destroy(c->src);
    dnnl_memory_destroy(c->wei);
    dnnl_memory_destroy(c->bia);
    dnnl_memory_destroy(c->dst);
    free(c);
}

void imsi_onednn_free(imsi_onednn *d)
{
    if (!d)
        return;
    while (d->convs) {
        onednn_conv *c = d->convs;
        d->convs = c->next;
        conv_free(c);
    }
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
    free(d);
}

void imsi_onednn_forget(imsi_onednn *d, const void *ptr)
{
    for (onednn_conv **p = d ? &d->convs : NULL; p && *p;) {
        onednn_conv *c = *p;
        if ((const void *)c->w == ptr || (const void *)c->bias == ptr) {
            *p = c->next;
            conv_free(c);
        } else {
            p = &c->next;
        }
    }
}

static void fingerprint(const imsi_cpu_conv2d_shape *s, const float *w, float out[FINGERPRINT])
{
    size_t n = (size_t)s->o * s->kh * s->kw * s->c;
    for (int i = 0; i < FINGERPRINT; i++)
        out[i] = w[(size_t)i * (n - 1) / (FINGERPRINT - 1)];
}

static int same_conv(const onednn_conv *c, const imsi_cpu_conv2d_shape *s, const float *w, const float *bias, int relu,
                     const float fp[FINGERPRINT])
{
    return !memcmp(&c->s, s, sizeof *s) && c->w == w && c->bias == bias && c->relu == relu &&
           !memcmp(c->fingerprint, fp, sizeof c->fingerprint);
}

/* A primitive for this convolution with its filter reordered; c->usable 0
 * when oneDNN's choice is its reference kernel. */
static ims_status conv_build(imsi_onednn *d, onednn_conv *c, ims_error *err)
{
    ims_status st = IMS_OK;
    const imsi_cpu_conv2d_shape *s = &c->s;
    dnnl_memory_desc_t src_md, user_w_md, any_w_md, bia_md, dst_md;
    dnnl_dims_t src_dims = {s->n, s->c, s->h, s->w}, w_dims = {s->o, s->c, s->kh, s->kw}, b_dims = {s->o};
    dnnl_dims_t dst_dims = {s->n, s->o, s->oh, s->ow};
    dnnl_dims_t strides = {s->sh, s->sw}, pad = {s->ph, s->pw};
    /* oneDNN's padding_r: what makes (in + l + r - k) / stride + 1 = out, as torch pads */
    dnnl_dims_t pad_r = {(int64_t)(s->oh - 1) * s->sh + s->kh - s->h - s->ph,
                         (int64_t)(s->ow - 1) * s->sw + s->kw - s->w - s->pw};
    dnnl_convolution_desc_t cd;
    dnnl_post_ops_t post = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL, reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t user_w = NULL;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc), "src desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&user_w_md, 4, w_dims, dnnl_f32, dnnl_ohwi), "filter desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&any_w_md, 4, w_dims, dnnl_f32, dnnl_format_tag_any), "filter desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&bia_md, 1, b_dims, dnnl_f32, dnnl_a), "bias desc");
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc), "dst desc");
    DNNL_TRY(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
                                                &any_w_md, c->bias ? &bia_md : NULL, &dst_md, strides, pad, pad_r),
             "convolution desc");
    DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
    if (c->relu) {
        DNNL_TRY(dnnl_post_ops_create(&post), "post-ops");
        DNNL_TRY(dnnl_post_ops_append_eltwise(post, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "relu post-op");
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, post), "set post-ops");
    }
    DNNL_TRY(dnnl_primitive_desc_create(&pd, &cd, attr, d->engine, NULL), "convolution primitive desc");
    const char *impl = NULL;
    DNNL_TRY(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl), "impl query");
    c->usable = impl && strncmp(impl, "ref", 3) != 0;
    if (!c->usable)
        goto done;
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DNNL_TRY(dnnl_memory_create(&user_w, &user_w_md, d->engine, (void *)c->w), "filter memory");
    DNNL_TRY(dnnl_memory_create(&c->wei, w_md, d->engine, DNNL_MEMORY_ALLOCATE), "reordered filter memory");
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&reorder_pd, &user_w_md, d->engine, w_md, d->engine, NULL),
             "reorder desc");
    DNNL_TRY(dnnl_primitive_create(&reorder, reorder_pd), "reorder");
    /* One thread: a filter is at most a few MB, and a parallel region costs a
     * scheduler slice whenever the other core is busy (7 ms measured). */
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, c->wei}};
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_status_t rs = dnnl_primitive_execute(reorder, d->stream, 2, args);
    if (rs == dnnl_success)
        rs = dnnl_stream_wait(d->stream);
    omp_set_num_threads(threads);
    DNNL_TRY(rs, "filter reorder");
    DNNL_TRY(dnnl_memory_create(&c->src, &src_md, d->engine, DNNL_MEMORY_NONE), "src memory");
    DNNL_TRY(dnnl_memory_create(&c->dst, &dst_md, d->engine, DNNL_MEMORY_NONE), "dst memory");
    if (c->bias)
        DNNL_TRY(dnnl_memory_create(&c->bia, &bia_md, d->engine, (void *)c->bias), "bias memory");
    DNNL_TRY(dnnl_primitive_create(&c->prim, pd), "convolution primitive");
done:
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(user_w);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    dnnl_post_ops_destroy(post);
    return st;
}

/* The cached entry for this convolution, built on first use (NULL on error). */
static onednn_conv *conv_find(imsi_onednn *d, const imsi_cpu_conv2d_shape *s, const float *w, const float *bias,
                              int relu, ims_error *err)
{
    float fp[FINGERPRINT];
    fingerprint(s, w, fp);
    for (onednn_conv **p = &d->convs; *p; p = &(*p)->next) {
        onednn_conv *c = *p;
        if (same_conv(c, s, w, bias, relu, fp))
            return c;
        if (c->w == w && !memcmp(&c->s, s, sizeof *s)) { /* same address, other values: a new filter */
            *p = c->next;
            conv_free(c);
            break;
        }
    }
    onednn_conv *c = calloc(1, sizeof *c);
    if (!c) {
        ims_error_set(err, IMS_ERR_NOMEM, "oneDNN: out of memory");
        return NULL;
    }
    c->s = *s, c->w = w, c->bias = bias, c->relu = relu;
    memcpy(c->fingerprint, fp, sizeof fp);
    if (conv_build(d, c, err)) {
        conv_free(c);
        return NULL;
    }
    c->next = d->convs;
    d->convs = c;
    return c;
}

size_t imsi_onednn_conv2d_scratch_bytes(const imsi_cpu_conv2d_shape *s, int y_channels)
{
    return y_channels == s->o ? 0 : (size_t)s->n * s->oh * s->ow * s->o * sizeof(float);
}

ims_status imsi_onednn_conv2d_nhwc(imsi_onednn *d, const imsi_cpu_conv2d_shape *s, const float *x, const float *w,
                                   const float *bias, int relu, float *y, int y_channels, int y_offset, void *scratch,
                                   ims_error *err)
{
    ims_status st = IMS_OK;
    onednn_conv *c = conv_find(d, s, w, bias, relu, err);
    if (!c)
        return err->code ? err->code : IMS_ERR_UNSUPPORTED;
    if (!c->usable)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "oneDNN has only its reference kernel for this convolution");
    int dense = y_channels == s->o;
    float *out = dense ? y : scratch;
    DNNL_TRY(dnnl_memory_set_data_handle(c->src, (void *)x), "src handle");
    DNNL_TRY(dnnl_memory_set_data_handle(c->dst, out), "dst handle");
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_DST, c->dst},
                               {DNNL_ARG_BIAS, c->bia}};
    DNNL_TRY(dnnl_primitive_execute(c->prim, d->stream, bias ? 4 : 3, args), "convolution");
    DNNL_TRY(dnnl_stream_wait(d->stream), "convolution");
    if (!dense) {
        size_t rows = (size_t)s->n * s->oh * s->ow;
        for (size_t r = 0; r < rows; r++)
            memcpy(y + r * y_channels + y_offset, out + r * s->o, (size_t)s->o * sizeof *y);
    }
done:
    return st;
}

int imsi_onednn_version(char *buf, size_t size)
{
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, size, "%d.%d.%d (cpu runtime %s)", v->major, v->minor, v->patch,
             v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
    return 1;
}

#else /* !IMS_HAVE_ONEDNN: the reference path only */

ims_status imsi_onednn_create(imsi_onednn **out, ims_error *err)
{
    *out = NULL;
    return ims_error_set(err, IMS_ERR_UNSUPPORTED, "this build has no oneDNN");
}

void imsi_onednn_free(imsi_onednn *d) { (void)d; }
void imsi_onednn_forget(imsi_onednn *d, const void *ptr) { (void)d, (void)ptr; }

size_t imsi_onednn_conv2d_scratch_bytes(const imsi_cpu_conv2d_shape *s, int y_channels)
{
    (void)s, (void)y_channels;
    return 0;
}

ims_status imsi_onednn_conv2d_nhwc(imsi_onednn *d, const imsi_cpu_conv2d_shape *s, const float *x, const float *w,
                                   const float *bias, int relu, float *y, int y_channels, int y_offset, void *scratch,
                                   ims_error *err)
{
    (void)d, (void)s, (void)x, (void)w, (void)bias, (void)relu, (void)y, (void)y_channels, (void)y_offset,
        (void)scratch;
    return ims_error_set(err, IMS_ERR_UNSUPPORTED, "this build has no oneDNN");
}

int imsi_onednn_version(char *buf, size_t size)
{
    (void)buf, (void)size;
    return 0;
}

#endif
