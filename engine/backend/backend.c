/* backend.c: the checked entry points of backend.h, and tensors on a backend. */
#include "backend/backend.h"

#include "core/error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void ims_backend_free(ims_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const ims_backend_info *ims_backend_get_info(const ims_backend *be) { return &be->info; }

imsi_memory imsi_backend_memory(const ims_backend *be) { return be->memory; }

ims_status imsi_backend_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    *out = NULL;
    if (nbytes == 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "zero-byte allocation");
    ims_status st = be->ops->alloc(be, nbytes, out, err);
    if (st)
        return st;
    be->bytes_in_use += nbytes;
    if (be->bytes_in_use > be->bytes_peak)
        be->bytes_peak = be->bytes_in_use;
    return IMS_OK;
}

void imsi_backend_dealloc(ims_backend *be, void *ptr, size_t nbytes)
{
    if (!ptr)
        return;
    be->ops->dealloc(be, ptr);
    be->bytes_in_use -= nbytes <= be->bytes_in_use ? nbytes : be->bytes_in_use;
}

ims_status imsi_tensor_alloc(ims_backend *be, ims_dtype dtype, int ndim, const int64_t *shape,
                             imsi_tensor *out, ims_error *err)
{
    ims_status st = imsi_tensor_init(NULL, dtype, ndim, shape, imsi_backend_memory(be), out, err);
    if (st)
        return st;
    st = imsi_backend_alloc(be, imsi_tensor_nbytes(out), &out->data, err);
    if (st) {
        char shape_text[96];
        memset(out, 0, sizeof *out);
        imsi_tensor tmp;
        imsi_tensor_init(NULL, dtype, ndim, shape, IMS_MEMORY_HOST, &tmp, NULL);
        return imsi_error_prefix(err, st, "tensor %s", imsi_tensor_describe(&tmp, shape_text, sizeof shape_text));
    }
    out->backend = be;
    return IMS_OK;
}

void imsi_tensor_free(imsi_tensor *t)
{
    if (t && t->backend && t->data)
        imsi_backend_dealloc(t->backend, t->data, imsi_tensor_nbytes(t));
    if (t)
        memset(t, 0, sizeof *t);
}

ims_status imsi_backend_host_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    *out = NULL;
    if (nbytes == 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "zero-byte host allocation");
    return be->ops->host_alloc(be, nbytes, out, err);
}

void imsi_backend_host_free(ims_backend *be, void *ptr)
{
    if (ptr)
        be->ops->host_free(be, ptr);
}

static ims_status check_placement(const ims_backend *be, const imsi_tensor *t, const char *what,
                                  ims_error *err)
{
    if (!t->data)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: tensor has no data", what);
    if (t->memory != be->memory)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: tensor is in %s memory, backend %s needs %s", what,
                             t->memory == IMS_MEMORY_HOST ? "host" : "device", be->info.name,
                             be->memory == IMS_MEMORY_HOST ? "host" : "device");
    return IMS_OK;
}

static ims_status check_copy_size(const imsi_tensor *t, size_t nbytes, const char *what, ims_error *err)
{
    if (imsi_tensor_nbytes(t) != nbytes)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: %zu bytes for a tensor of %zu bytes", what, nbytes,
                             imsi_tensor_nbytes(t));
    return IMS_OK;
}

ims_status imsi_backend_upload(ims_backend *be, imsi_tensor *dst, const void *src, size_t nbytes,
                               ims_error *err)
{
    ims_status st = check_placement(be, dst, "upload", err);
    if (!st)
        st = check_copy_size(dst, nbytes, "upload", err);
    return st ? st : be->ops->upload(be, dst->data, src, nbytes, err);
}

ims_status imsi_backend_download(ims_backend *be, void *dst, size_t nbytes, const imsi_tensor *src,
                                 ims_error *err)
{
    ims_status st = check_placement(be, src, "download", err);
    if (!st)
        st = check_copy_size(src, nbytes, "download", err);
    return st ? st : be->ops->download(be, dst, src->data, nbytes, err);
}

ims_status imsi_backend_fill_bytes(ims_backend *be, imsi_tensor *t, int byte, ims_error *err)
{
    ims_status st = check_placement(be, t, "fill_bytes", err);
    return st ? st : be->ops->fill_bytes(be, t->data, byte, imsi_tensor_nbytes(t), err);
}

ims_status imsi_backend_synchronize(ims_backend *be, ims_error *err)
{
    return be->ops->synchronize(be, err);
}

ims_status imsi_op_convert(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err)
{
    ims_status st = check_placement(be, src, "convert src", err);
    if (!st)
        st = check_placement(be, dst, "convert dst", err);
    if (st)
        return st;
    if (imsi_tensor_numel(src) != imsi_tensor_numel(dst))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "convert: %lld elements into %lld",
                             (long long)imsi_tensor_numel(src), (long long)imsi_tensor_numel(dst));
    int floats = (src->dtype == IMS_DTYPE_F32 || src->dtype == IMS_DTYPE_F16) &&
                 (dst->dtype == IMS_DTYPE_F32 || dst->dtype == IMS_DTYPE_F16);
    if (!floats && src->dtype != dst->dtype)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "convert: %s to %s", ims_dtype_name(src->dtype),
                             ims_dtype_name(dst->dtype));
    return be->ops->convert(be, src, dst, err);
}

ims_status imsi_op_l2_normalize_rows(ims_backend *be, const imsi_tensor *x, imsi_tensor *y,
                                     imsi_tensor *norms, ims_error *err)
{
    ims_status st = check_placement(be, x, "l2_normalize_rows x", err);
    if (!st)
        st = check_placement(be, y, "l2_normalize_rows y", err);
    if (!st)
        st = check_placement(be, norms, "l2_normalize_rows norms", err);
    if (!st)
        st = imsi_tensor_expect(x, "l2_normalize_rows x", IMS_DTYPE_F32, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t n = x->shape[0], d = x->shape[1];
    if (y->dtype != IMS_DTYPE_F16)
        st = imsi_tensor_expect(y, "l2_normalize_rows y", IMS_DTYPE_F32, 2, (int64_t[]){n, d}, err);
    else
        st = imsi_tensor_expect(y, "l2_normalize_rows y", IMS_DTYPE_F16, 2, (int64_t[]){n, d}, err);
    if (!st)
        st = imsi_tensor_expect(norms, "l2_normalize_rows norms", IMS_DTYPE_F32, 1, (int64_t[]){n}, err);
    if (!st && (n > INT_MAX || d > INT_MAX))
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "l2_normalize_rows: (%lld, %lld) exceeds int range",
                           (long long)n, (long long)d);
    return st ? st : be->ops->l2_normalize_rows(be, x, y, norms, err);
}

ims_status imsi_op_linear(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w,
                          const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "linear x", err);
    if (!st)
        st = check_placement(be, w, "linear w", err);
    if (!st && bias)
        st = check_placement(be, bias, "linear bias", err);
    if (!st)
        st = check_placement(be, y, "linear y", err);
    if (!st && x->dtype != IMS_DTYPE_F32 && x->dtype != IMS_DTYPE_F16)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "linear x: dtype %s (f32 or f16 expected)",
                           ims_dtype_name(x->dtype));
    if (!st)
        st = imsi_tensor_expect(x, "linear x", x->dtype, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], k = x->shape[1];
    st = imsi_tensor_expect(w, "linear w", x->dtype, 2, (int64_t[]){-1, k}, err);
    if (st)
        return st;
    int64_t n = w->shape[0];
    if (bias) /* always f32, whatever the activations' dtype */
        st = imsi_tensor_expect(bias, "linear bias", IMS_DTYPE_F32, 1, (int64_t[]){n}, err);
    if (!st)
        st = imsi_tensor_expect(y, "linear y", x->dtype, 2, (int64_t[]){m, n}, err);
    if (!st && (m > INT_MAX || n > INT_MAX || k > INT_MAX))
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "linear: (%lld x %lld) . (%lld x %lld)^T exceeds int range",
                           (long long)m, (long long)k, (long long)n, (long long)k);
    return st ? st : be->ops->linear(be, x, w, bias, y, err);
}

/* ---- Benchmarks --------------------------------------------------------------------- */

struct ims_backend_timer {
    ims_backend *be;
    void *impl;
    int started, stopped;
};

ims_status ims_backend_timer_create(ims_backend *be, ims_backend_timer **out, ims_error *err)
{
    *out = NULL;
    if (!be->ops->timer_create) /* optional: the timer slots come as a set */
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s has no timer", be->info.name);
    ims_backend_timer *t = calloc(1, sizeof *t);
    if (!t)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    t->be = be;
    ims_status st = be->ops->timer_create(be, &t->impl, err);
    if (st) {
        free(t);
        return st;
    }
    *out = t;
    return IMS_OK;
}

ims_status ims_backend_timer_start(ims_backend_timer *t, ims_error *err)
{
    t->started = 1;
    t->stopped = 0;
    return t->be->ops->timer_mark(t->be, t->impl, 0, err);
}

ims_status ims_backend_timer_stop(ims_backend_timer *t, ims_error *err)
{
    if (!t->started)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "timer stopped before it was started");
    t->stopped = 1;
    return t->be->ops->timer_mark(t->be, t->impl, 1, err);
}

ims_status ims_backend_timer_elapsed_ms(ims_backend_timer *t, double *ms, ims_error *err)
{
    if (!t->stopped)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "timer read before it was stopped");
    return t->be->ops->timer_elapsed_ms(t->be, t->impl, ms, err);
}

void ims_backend_timer_free(ims_backend_timer *t)
{
    if (!t)
        return;
    t->be->ops->timer_free(t->be, t->impl);
    free(t);
}

ims_status ims_backend_measure_peaks(ims_backend *be, int quick, ims_backend_peaks *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    if (!be->ops->measure_peaks)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s cannot measure its peaks", be->info.name);
    return be->ops->measure_peaks(be, quick, out, err);
}


int64_t imsi_conv_out_size(int64_t in, int k, int stride, int pad)
{
    if (k < 1 || stride < 1 || pad < 0 || in + 2 * (int64_t)pad < k)
        return 0;
    return (in + 2 * (int64_t)pad - k) / stride + 1;
}

/* f32 tensors, or f16 where the backend allows it (CUDA); all of one dtype. */
static ims_status check_act_dtype(const ims_backend *be, const imsi_tensor *t, ims_dtype want, const char *what,
                                  ims_error *err)
{
    if (t->dtype != want)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: dtype %s, expected %s", what, ims_dtype_name(t->dtype),
                             ims_dtype_name(want));
    if (want == IMS_DTYPE_F16 && be->memory == IMS_MEMORY_HOST)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: f16 tensors need the CUDA backend", what);
    if (want != IMS_DTYPE_F32 && want != IMS_DTYPE_F16)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: dtype %s (f32 or f16 only)", what, ims_dtype_name(want));
    return IMS_OK;
}

static ims_status check_int_dims(const imsi_tensor *t, const char *what, ims_error *err)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > INT_MAX)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: dim %d is %lld, beyond int range", what, d,
                                 (long long)t->shape[d]);
    if (imsi_tensor_numel(t) <= 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: no elements", what);
    return IMS_OK;
}

ims_status imsi_op_conv2d(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                          const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "conv2d x", err);
    if (!st) st = check_placement(be, w, "conv2d w", err);
    if (!st && !bias) st = ims_error_set(err, IMS_ERR_ARGUMENT, "conv2d: no bias (one is required)");
    if (!st) st = check_placement(be, bias, "conv2d bias", err);
    if (!st) st = check_placement(be, y, "conv2d y", err);
    if (st)
        return st;
    if (p->precision < IMS_PRECISION_FP32 || p->precision > IMS_PRECISION_FP16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "conv2d: unknown precision %d", (int)p->precision);
    if (be->memory == IMS_MEMORY_HOST && p->precision != IMS_PRECISION_FP32)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "conv2d: precision %s needs the CUDA backend",
                             ims_precision_name(p->precision));
    ims_dtype dt = p->precision == IMS_PRECISION_FP16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    st = check_act_dtype(be, x, dt, "conv2d x", err);
    if (!st) st = check_act_dtype(be, w, dt, "conv2d w", err);
    if (!st) st = check_act_dtype(be, y, dt, "conv2d y", err);
    if (!st) st = imsi_tensor_expect(x, "conv2d x", dt, 4, (int64_t[]){-1, -1, -1, -1}, err);
    if (!st) st = imsi_tensor_expect(w, "conv2d w", dt, 4, (int64_t[]){-1, -1, -1, x->shape[3]}, err);
    if (!st) st = imsi_tensor_expect(bias, "conv2d bias", dt, 1, (int64_t[]){w->shape[0]}, err);
    if (!st) st = check_int_dims(x, "conv2d x", err);
    if (!st) st = check_int_dims(w, "conv2d w", err);
    if (st)
        return st;
    if (p->stride_h < 1 || p->stride_w < 1 || p->pad_h < 0 || p->pad_w < 0 || p->y_channel_offset < 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "conv2d: stride (%d, %d), pad (%d, %d), channel offset %d",
                             p->stride_h, p->stride_w, p->pad_h, p->pad_w, p->y_channel_offset);
    int64_t oh = imsi_conv_out_size(x->shape[1], (int)w->shape[1], p->stride_h, p->pad_h);
    int64_t ow = imsi_conv_out_size(x->shape[2], (int)w->shape[2], p->stride_w, p->pad_w);
    if (oh < 1 || ow < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "conv2d: a %lldx%lld filter does not fit a %lldx%lld input",
                             (long long)w->shape[1], (long long)w->shape[2], (long long)x->shape[1],
                             (long long)x->shape[2]);
    st = imsi_tensor_expect(y, "conv2d y", dt, 4, (int64_t[]){x->shape[0], oh, ow, -1}, err);
    if (!st) st = check_int_dims(y, "conv2d y", err);
    if (!st && p->y_channel_offset + w->shape[0] > y->shape[3])
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "conv2d: channels [%d, %lld) do not fit y's %lld", p->y_channel_offset,
                           (long long)(p->y_channel_offset + w->shape[0]), (long long)y->shape[3]);
    return st ? st : be->ops->conv2d(be, p, x, w, bias, y, err);
}

ims_status imsi_op_pool2d(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                          ims_error *err)
{
    ims_status st = check_placement(be, x, "pool2d x", err);
    if (!st) st = check_placement(be, y, "pool2d y", err);
    if (!st) st = check_act_dtype(be, x, x->dtype, "pool2d x", err);
    if (!st) st = imsi_tensor_expect(x, "pool2d x", x->dtype, 4, (int64_t[]){-1, -1, -1, -1}, err);
    if (!st) st = check_int_dims(x, "pool2d x", err);
    if (st)
        return st;
    if ((p->kind != IMS_POOL_MAX && p->kind != IMS_POOL_AVG) || p->k < 1 || p->stride < 1 || p->pad < 0 ||
        p->pad * 2 >= p->k + 1 || p->y_channel_offset < 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "pool2d: kind %d, k %d, stride %d, pad %d, channel offset %d",
                             (int)p->kind, p->k, p->stride, p->pad, p->y_channel_offset);
    int64_t oh = imsi_conv_out_size(x->shape[1], p->k, p->stride, p->pad);
    int64_t ow = imsi_conv_out_size(x->shape[2], p->k, p->stride, p->pad);
    if (oh < 1 || ow < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "pool2d: a %dx%d window does not fit a %lldx%lld input", p->k, p->k,
                             (long long)x->shape[1], (long long)x->shape[2]);
    st = imsi_tensor_expect(y, "pool2d y", x->dtype, 4, (int64_t[]){x->shape[0], oh, ow, -1}, err);
    if (!st) st = check_int_dims(y, "pool2d y", err);
    if (!st && p->y_channel_offset + x->shape[3] > y->shape[3])
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "pool2d: channels [%d, %lld) do not fit y's %lld", p->y_channel_offset,
                           (long long)(p->y_channel_offset + x->shape[3]), (long long)y->shape[3]);
    return st ? st : be->ops->pool2d(be, p, x, y, err);
}

ims_status imsi_op_global_avg_pool(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "global_avg_pool x", err);
    if (!st) st = check_placement(be, y, "global_avg_pool y", err);
    if (!st) st = check_act_dtype(be, x, x->dtype, "global_avg_pool x", err);
    if (!st) st = imsi_tensor_expect(x, "global_avg_pool x", x->dtype, 4, (int64_t[]){-1, -1, -1, -1}, err);
    if (!st) st = check_int_dims(x, "global_avg_pool x", err);
    if (!st)
        st = imsi_tensor_expect(y, "global_avg_pool y", IMS_DTYPE_F32, 2, (int64_t[]){x->shape[0], x->shape[3]}, err);
    return st ? st : be->ops->global_avg_pool(be, x, y, err);
}

ims_status imsi_op_input_u8(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                            imsi_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "input_u8 x", err);
    if (!st) st = check_placement(be, y, "input_u8 y", err);
    if (!st) st = imsi_tensor_expect(x, "input_u8 x", IMS_DTYPE_U8, 4, (int64_t[]){-1, -1, -1, 3}, err);
    if (!st) st = check_int_dims(x, "input_u8 x", err);
    if (!st) st = check_act_dtype(be, y, y->dtype, "input_u8 y", err);
    if (!st)
        st = imsi_tensor_expect(y, "input_u8 y", y->dtype, 4, (int64_t[]){x->shape[0], x->shape[1], x->shape[2], 3},
                                err);
    return st ? st : be->ops->input_u8(be, x, scale, shift, y, err);
}

ims_status imsi_op_knn_select(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k, int path,
                              imsi_tensor *ids, imsi_tensor *scores, ims_error *err)
{
    ims_status st = check_placement(be, table, "knn table", err);
    if (!st)
        st = check_placement(be, queries, "knn queries", err);
    if (!st)
        st = check_placement(be, ids, "knn ids", err);
    if (!st)
        st = check_placement(be, scores, "knn scores", err);
    if (st)
        return st;
    if (table->dtype != IMS_DTYPE_F32 && table->dtype != IMS_DTYPE_F16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn table: dtype %s (f32 or f16)", ims_dtype_name(table->dtype));
    if ((st = imsi_tensor_expect(table, "knn table", table->dtype, 2, (int64_t[]){-1, -1}, err)))
        return st;
    int64_t n = table->shape[0], d = table->shape[1];
    if ((st = imsi_tensor_expect(queries, "knn queries", IMS_DTYPE_F32, 2, (int64_t[]){-1, d}, err)))
        return st;
    int64_t b = queries->shape[0];
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    int64_t kk = k < n ? k : n;
    if ((st = imsi_tensor_expect(ids, "knn ids", IMS_DTYPE_I32, 2, (int64_t[]){b, kk}, err)) ||
        (st = imsi_tensor_expect(scores, "knn scores", IMS_DTYPE_F32, 2, (int64_t[]){b, kk}, err)))
        return st;
    if (n > INT32_MAX || d > INT32_MAX || b > INT32_MAX)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn: table (%lld, %lld) or %lld queries exceed int range",
                             (long long)n, (long long)d, (long long)b);
    return be->ops->knn_select(be, table, queries, k, path, ids, scores, err);
}

ims_status imsi_op_knn_rescore(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries,
                               const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                               int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err)
{
    if (!be->ops->knn_rescore)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn rescore: not on the %s backend", be->info.name);
    const imsi_tensor *all[] = {table, queries, cand, cand_scores, margin, ids, scores, ok};
    const char *names[] = {"table", "queries", "cand", "cand_scores", "margin", "ids", "scores", "ok"};
    ims_status st = IMS_OK;
    for (int i = 0; i < 8 && !st; i++)
        st = check_placement(be, all[i], names[i], err);
    if (st)
        return st;
    if (table->dtype != IMS_DTYPE_F32 && table->dtype != IMS_DTYPE_F16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn rescore table: dtype %s (f32 or f16)",
                             ims_dtype_name(table->dtype));
    if ((st = imsi_tensor_expect(table, "knn rescore table", table->dtype, 2, (int64_t[]){-1, -1}, err)))
        return st;
    int64_t n = table->shape[0], d = table->shape[1];
    if ((st = imsi_tensor_expect(queries, "knn rescore queries", IMS_DTYPE_F32, 2, (int64_t[]){-1, d}, err)))
        return st;
    int64_t b = queries->shape[0];
    if ((st = imsi_tensor_expect(cand, "knn rescore cand", IMS_DTYPE_I32, 2, (int64_t[]){b, -1}, err)))
        return st;
    int64_t c = cand->shape[1];
    if ((st = imsi_tensor_expect(cand_scores, "knn rescore cand_scores", IMS_DTYPE_F32, 2, (int64_t[]){b, c}, err)) ||
        (st = imsi_tensor_expect(margin, "knn rescore margin", IMS_DTYPE_F32, 1, (int64_t[]){b}, err)) ||
        (st = imsi_tensor_expect(ok, "knn rescore ok", IMS_DTYPE_I32, 1, (int64_t[]){b}, err)))
        return st;
    if (k < 1 || k > IMS_KNN_MAX_K || c < 1 || c > n)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn rescore: k = %d, %lld candidates of %lld rows", k,
                             (long long)c, (long long)n);
    int64_t kk = k < c ? k : c;
    if ((st = imsi_tensor_expect(ids, "knn rescore ids", IMS_DTYPE_I32, 2, (int64_t[]){b, kk}, err)) ||
        (st = imsi_tensor_expect(scores, "knn rescore scores", IMS_DTYPE_F32, 2, (int64_t[]){b, kk}, err)))
        return st;
    if (n > INT32_MAX || d > INT32_MAX || b > INT32_MAX || c > 65536)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn rescore: table (%lld, %lld), %lld queries or %lld candidates",
                             (long long)n, (long long)d, (long long)b, (long long)c);
    return be->ops->knn_rescore(be, table, queries, cand, cand_scores, margin, k, ids, scores, ok, err);
}


/* Activations: f32 or f16. */
static ims_status check_float_dtype(const imsi_tensor *t, const char *what, ims_error *err)
{
    if (t->dtype != IMS_DTYPE_F32 && t->dtype != IMS_DTYPE_F16)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: dtype %s (f32 or f16 expected)", what,
                             ims_dtype_name(t->dtype));
    return IMS_OK;
}

/* Placement of n tensors (NULL entries skipped), with their names. */
static ims_status check_placements(const ims_backend *be, int n, const imsi_tensor *const *ts,
                                   const char *const *names, ims_error *err)
{
    for (int i = 0; i < n; i++) {
        ims_status st = ts[i] ? check_placement(be, ts[i], names[i], err) : IMS_OK;
        if (st)
            return st;
    }
    return IMS_OK;
}

static ims_status check_int_range(const char *op, int n, const int64_t *dims, ims_error *err)
{
    /* dims are products of a checked tensor's dims, so they do not overflow int64 */
    for (int i = 0; i < n; i++)
        if (dims[i] > INT_MAX)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: size %lld exceeds int range", op, (long long)dims[i]);
    return IMS_OK;
}

static ims_status check_eps(const char *op, double eps, ims_error *err)
{
    if (!(eps > 0.0 && eps < 1.0))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: eps %g outside (0, 1)", op, eps);
    return IMS_OK;
}

ims_status imsi_op_embed_layernorm(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                   const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                   const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err)
{
    const imsi_tensor *ts[] = {ids, word, pos, type, gamma, beta, y};
    const char *names[] = {"embed ids", "embed word", "embed pos", "embed type", "embed gamma", "embed beta",
                           "embed y"};
    ims_status st = check_placements(be, 7, ts, names, err);
    if (!st)
        st = imsi_tensor_expect(ids, "embed ids", IMS_DTYPE_I32, 2, (int64_t[]){-1, -1}, err);
    if (!st)
        st = imsi_tensor_expect(word, "embed word", IMS_DTYPE_F32, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t b = ids->shape[0], t = ids->shape[1], h = word->shape[1];
    st = imsi_tensor_expect(pos, "embed pos", IMS_DTYPE_F32, 2, (int64_t[]){-1, h}, err);
    if (!st)
        st = imsi_tensor_expect(type, "embed type", IMS_DTYPE_F32, 2, (int64_t[]){-1, h}, err);
    if (!st)
        st = imsi_tensor_expect(gamma, "embed gamma", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = imsi_tensor_expect(beta, "embed beta", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = check_float_dtype(y, "embed y", err);
    if (!st)
        st = imsi_tensor_expect(y, "embed y", y->dtype, 3, (int64_t[]){b, t, h}, err);
    if (!st && pos->shape[0] < t)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "embed: %lld tokens but %lld positions", (long long)t,
                           (long long)pos->shape[0]);
    if (!st)
        st = check_eps("embed", eps, err);
    if (!st)
        st = check_int_range("embed", 4, (int64_t[]){b * t, h, word->shape[0], b * t * h}, err);
    return st ? st : be->ops->embed_layernorm(be, ids, word, pos, type, gamma, beta, eps, y, err);
}

ims_status imsi_op_bias_act(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                            imsi_tensor *y, ims_error *err)
{
    const imsi_tensor *ts[] = {x, bias, y};
    const char *names[] = {"bias_act x", "bias_act bias", "bias_act y"};
    ims_status st = check_placements(be, 3, ts, names, err);
    if (!st)
        st = check_float_dtype(x, "bias_act x", err);
    if (!st)
        st = imsi_tensor_expect(x, "bias_act x", x->dtype, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], n = x->shape[1];
    st = imsi_tensor_expect(bias, "bias_act bias", IMS_DTYPE_F32, 1, (int64_t[]){n}, err);
    if (!st)
        st = imsi_tensor_expect(y, "bias_act y", x->dtype, 2, (int64_t[]){m, n}, err);
    if (!st && act != IMS_ACT_NONE && act != IMS_ACT_GELU)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "bias_act: unknown activation %d", (int)act);
    if (!st)
        st = check_int_range("bias_act", 3, (int64_t[]){m, n, m * n}, err);
    return st ? st : be->ops->bias_act(be, x, bias, act, y, err);
}

ims_status imsi_op_add_layernorm(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                 const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                 double eps, imsi_tensor *y, ims_error *err)
{
    const imsi_tensor *ts[] = {x, bias, residual, gamma, beta, y};
    const char *names[] = {"add_layernorm x", "add_layernorm bias", "add_layernorm residual",
                           "add_layernorm gamma", "add_layernorm beta", "add_layernorm y"};
    ims_status st = check_placements(be, 6, ts, names, err);
    if (!st)
        st = check_float_dtype(x, "add_layernorm x", err);
    if (!st)
        st = imsi_tensor_expect(x, "add_layernorm x", x->dtype, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], h = x->shape[1];
    if (bias)
        st = imsi_tensor_expect(bias, "add_layernorm bias", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = imsi_tensor_expect(residual, "add_layernorm residual", x->dtype, 2, (int64_t[]){m, h}, err);
    if (!st)
        st = imsi_tensor_expect(gamma, "add_layernorm gamma", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = imsi_tensor_expect(beta, "add_layernorm beta", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = imsi_tensor_expect(y, "add_layernorm y", x->dtype, 2, (int64_t[]){m, h}, err);
    if (!st && y->data == x->data)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "add_layernorm: y may alias residual, not x");
    if (!st)
        st = check_eps("add_layernorm", eps, err);
    if (!st)
        st = check_int_range("add_layernorm", 3, (int64_t[]){m, h, m * h}, err);
    return st ? st : be->ops->add_layernorm(be, x, bias, residual, gamma, beta, eps, y, err);
}

ims_status imsi_op_attention(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                             imsi_tensor *scores, imsi_tensor *ctx, ims_error *err)
{
    const imsi_tensor *ts[] = {qkv, lengths, scores, ctx};
    const char *names[] = {"attention qkv", "attention lengths", "attention scores", "attention ctx"};
    ims_status st = check_placements(be, 4, ts, names, err);
    if (!st)
        st = check_float_dtype(qkv, "attention qkv", err);
    if (!st)
        st = imsi_tensor_expect(qkv, "attention qkv", qkv->dtype, 3, (int64_t[]){-1, -1, -1}, err);
    if (st)
        return st;
    int64_t b = qkv->shape[0], t = qkv->shape[1], h3 = qkv->shape[2];
    if (h3 % 3 != 0 || heads < 1 || (h3 / 3) % heads != 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "attention: qkv width %lld is not 3 x heads (%d) x head size",
                             (long long)h3, heads);
    int64_t h = h3 / 3;
    st = imsi_tensor_expect(lengths, "attention lengths", IMS_DTYPE_I32, 1, (int64_t[]){b}, err);
    if (!st)
        st = imsi_tensor_expect(scores, "attention scores", qkv->dtype, 4, (int64_t[]){b, heads, t, t}, err);
    if (!st)
        st = imsi_tensor_expect(ctx, "attention ctx", qkv->dtype, 3, (int64_t[]){b, t, h}, err);
    if (!st)
        st = check_int_range("attention", 3, (int64_t[]){b * t * h3, b * heads, t * t}, err);
    return st ? st : be->ops->attention(be, qkv, lengths, heads, scores, ctx, err);
}

ims_status imsi_op_pool_normalize(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                  imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err)
{
    const imsi_tensor *ts[] = {x, lengths, y};
    const char *names[] = {"pool x", "pool lengths", "pool y"};
    ims_status st = check_placements(be, 3, ts, names, err);
    if (!st)
        st = check_float_dtype(x, "pool x", err);
    if (!st)
        st = imsi_tensor_expect(x, "pool x", x->dtype, 3, (int64_t[]){-1, -1, -1}, err);
    if (st)
        return st;
    int64_t b = x->shape[0], t = x->shape[1], h = x->shape[2];
    st = imsi_tensor_expect(lengths, "pool lengths", IMS_DTYPE_I32, 1, (int64_t[]){b}, err);
    if (!st)
        st = imsi_tensor_expect(y, "pool y", IMS_DTYPE_F32, 2, (int64_t[]){b, h}, err);
    if (!st && pooling != IMS_POOLING_MEAN && pooling != IMS_POOLING_CLS)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "pool: unknown pooling %d", (int)pooling);
    if (!st)
        st = check_int_range("pool", 2, (int64_t[]){b * t * h, h}, err);
    return st ? st : be->ops->pool_normalize(be, x, lengths, pooling, normalize, y, err);
}

int imsi_backend_has_graphs(const ims_backend *be) { return be->ops->capture_begin != NULL; }

ims_status imsi_backend_capture_begin(ims_backend *be, ims_error *err)
{
    if (!be->ops->capture_begin)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s has no graph capture", be->info.name);
    return be->ops->capture_begin(be, err);
}

ims_status imsi_backend_capture_end(ims_backend *be, void **graph, ims_error *err)
{
    *graph = NULL;
    if (!be->ops->capture_end)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s has no graph capture", be->info.name);
    return be->ops->capture_end(be, graph, err);
}

ims_status imsi_backend_graph_launch(ims_backend *be, void *graph, ims_error *err)
{
    if (!be->ops->graph_launch || !graph)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "graph_launch: no graph on backend %s", be->info.name);
    return be->ops->graph_launch(be, graph, err);
}

void imsi_backend_graph_free(ims_backend *be, void *graph)
{
    if (graph && be->ops->graph_free)
        be->ops->graph_free(be, graph);
}
