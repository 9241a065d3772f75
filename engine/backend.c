/* backend.c: backend creation and the checked entry points of backend.h. */
#include "backend.h"

#include "error.h"

#include <limits.h>
#include <string.h>

ims_status ims_backend_create(ims_backend_kind kind, int device, ims_backend **out, ims_error *err)
{
    *out = NULL;
    switch (kind) {
    case IMS_BACKEND_CPU: return ims_backend_cpu_create(out, err);
    case IMS_BACKEND_CUDA: return ims_backend_cuda_create(device, out, err);
    }
    return ims_fail(err, IMS_ERR_ARGUMENT, "unknown backend kind %d", (int)kind);
}

void ims_backend_free(ims_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const ims_backend_info *ims_backend_get_info(const ims_backend *be) { return &be->info; }

ims_memory ims_backend_memory(const ims_backend *be) { return be->memory; }

ims_status ims_backend_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    *out = NULL;
    if (nbytes == 0)
        return ims_fail(err, IMS_ERR_ARGUMENT, "zero-byte allocation");
    ims_status st = be->ops->alloc(be, nbytes, out, err);
    if (st)
        return st;
    be->bytes_in_use += nbytes;
    if (be->bytes_in_use > be->bytes_peak)
        be->bytes_peak = be->bytes_in_use;
    return IMS_OK;
}

void ims_backend_dealloc(ims_backend *be, void *ptr, size_t nbytes)
{
    if (!ptr)
        return;
    be->ops->dealloc(be, ptr);
    be->bytes_in_use -= nbytes <= be->bytes_in_use ? nbytes : be->bytes_in_use;
}

ims_status ims_backend_host_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    *out = NULL;
    if (nbytes == 0)
        return ims_fail(err, IMS_ERR_ARGUMENT, "zero-byte host allocation");
    return be->ops->host_alloc(be, nbytes, out, err);
}

void ims_backend_host_free(ims_backend *be, void *ptr)
{
    if (ptr)
        be->ops->host_free(be, ptr);
}

static ims_status check_placement(const ims_backend *be, const ims_tensor *t, const char *what,
                                  ims_error *err)
{
    if (!t->data)
        return ims_fail(err, IMS_ERR_ARGUMENT, "%s: tensor has no data", what);
    if (t->memory != be->memory)
        return ims_fail(err, IMS_ERR_ARGUMENT, "%s: tensor is in %s memory, backend %s needs %s", what,
                        t->memory == IMS_MEMORY_HOST ? "host" : "device", be->info.name,
                        be->memory == IMS_MEMORY_HOST ? "host" : "device");
    return IMS_OK;
}

static ims_status check_copy_size(const ims_tensor *t, size_t nbytes, const char *what, ims_error *err)
{
    if (ims_tensor_nbytes(t) != nbytes)
        return ims_fail(err, IMS_ERR_ARGUMENT, "%s: %zu bytes for a tensor of %zu bytes", what, nbytes,
                        ims_tensor_nbytes(t));
    return IMS_OK;
}

ims_status ims_backend_upload(ims_backend *be, ims_tensor *dst, const void *src, size_t nbytes,
                              ims_error *err)
{
    ims_status st = check_placement(be, dst, "upload", err);
    if (!st)
        st = check_copy_size(dst, nbytes, "upload", err);
    return st ? st : be->ops->upload(be, dst->data, src, nbytes, err);
}

ims_status ims_backend_download(ims_backend *be, void *dst, size_t nbytes, const ims_tensor *src,
                                ims_error *err)
{
    ims_status st = check_placement(be, src, "download", err);
    if (!st)
        st = check_copy_size(src, nbytes, "download", err);
    return st ? st : be->ops->download(be, dst, src->data, nbytes, err);
}

ims_status ims_backend_fill_bytes(ims_backend *be, ims_tensor *t, int byte, ims_error *err)
{
    ims_status st = check_placement(be, t, "fill_bytes", err);
    return st ? st : be->ops->fill_bytes(be, t->data, byte, ims_tensor_nbytes(t), err);
}

ims_status ims_backend_synchronize(ims_backend *be, ims_error *err)
{
    return be->ops->synchronize(be, err);
}

ims_status ims_op_convert(ims_backend *be, const ims_tensor *src, ims_tensor *dst, ims_error *err)
{
    ims_status st = check_placement(be, src, "convert src", err);
    if (!st)
        st = check_placement(be, dst, "convert dst", err);
    if (st)
        return st;
    if (ims_tensor_numel(src) != ims_tensor_numel(dst))
        return ims_fail(err, IMS_ERR_ARGUMENT, "convert: %lld elements into %lld",
                        (long long)ims_tensor_numel(src), (long long)ims_tensor_numel(dst));
    int floats = (src->dtype == IMS_DTYPE_F32 || src->dtype == IMS_DTYPE_F16) &&
                 (dst->dtype == IMS_DTYPE_F32 || dst->dtype == IMS_DTYPE_F16);
    if (!floats && src->dtype != dst->dtype)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "convert: %s to %s", ims_dtype_name(src->dtype),
                        ims_dtype_name(dst->dtype));
    return be->ops->convert(be, src, dst, err);
}

ims_status ims_op_l2_normalize_rows(ims_backend *be, const ims_tensor *x, ims_tensor *y,
                                    ims_tensor *norms, ims_error *err)
{
    ims_status st = check_placement(be, x, "l2_normalize_rows x", err);
    if (!st)
        st = check_placement(be, y, "l2_normalize_rows y", err);
    if (!st)
        st = check_placement(be, norms, "l2_normalize_rows norms", err);
    if (!st)
        st = ims_tensor_expect(x, "l2_normalize_rows x", IMS_DTYPE_F32, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t n = x->shape[0], d = x->shape[1];
    if (y->dtype != IMS_DTYPE_F16)
        st = ims_tensor_expect(y, "l2_normalize_rows y", IMS_DTYPE_F32, 2, (int64_t[]){n, d}, err);
    else
        st = ims_tensor_expect(y, "l2_normalize_rows y", IMS_DTYPE_F16, 2, (int64_t[]){n, d}, err);
    if (!st)
        st = ims_tensor_expect(norms, "l2_normalize_rows norms", IMS_DTYPE_F32, 1, (int64_t[]){n}, err);
    if (!st && (n > INT_MAX || d > INT_MAX))
        st = ims_fail(err, IMS_ERR_UNSUPPORTED, "l2_normalize_rows: (%lld, %lld) exceeds int range",
                      (long long)n, (long long)d);
    return st ? st : be->ops->l2_normalize_rows(be, x, y, norms, err);
}

ims_status ims_op_linear(ims_backend *be, const ims_tensor *x, const ims_tensor *w,
                         const ims_tensor *bias, ims_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "linear x", err);
    if (!st)
        st = check_placement(be, w, "linear w", err);
    if (!st && bias)
        st = check_placement(be, bias, "linear bias", err);
    if (!st)
        st = check_placement(be, y, "linear y", err);
    if (!st)
        st = ims_tensor_expect(x, "linear x", IMS_DTYPE_F32, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], k = x->shape[1];
    st = ims_tensor_expect(w, "linear w", IMS_DTYPE_F32, 2, (int64_t[]){-1, k}, err);
    if (st)
        return st;
    int64_t n = w->shape[0];
    if (bias)
        st = ims_tensor_expect(bias, "linear bias", IMS_DTYPE_F32, 1, (int64_t[]){n}, err);
    if (!st)
        st = ims_tensor_expect(y, "linear y", IMS_DTYPE_F32, 2, (int64_t[]){m, n}, err);
    if (!st && (m > INT_MAX || n > INT_MAX || k > INT_MAX))
        st = ims_fail(err, IMS_ERR_UNSUPPORTED, "linear: (%lld x %lld) . (%lld x %lld)^T exceeds int range",
                      (long long)m, (long long)k, (long long)n, (long long)k);
    return st ? st : be->ops->linear(be, x, w, bias, y, err);
}

/* --- inception --- */

int64_t ims_conv_out_size(int64_t in, int k, int stride, int pad)
{
    if (k < 1 || stride < 1 || pad < 0 || in + 2 * (int64_t)pad < k)
        return 0;
    return (in + 2 * (int64_t)pad - k) / stride + 1;
}

/* f32 tensors, or f16 where the backend allows it (CUDA); all of one dtype. */
static ims_status check_act_dtype(const ims_backend *be, const ims_tensor *t, ims_dtype want, const char *what,
                                  ims_error *err)
{
    if (t->dtype != want)
        return ims_fail(err, IMS_ERR_ARGUMENT, "%s: dtype %s, expected %s", what, ims_dtype_name(t->dtype),
                        ims_dtype_name(want));
    if (want == IMS_DTYPE_F16 && be->memory == IMS_MEMORY_HOST)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "%s: f16 tensors need the CUDA backend", what);
    if (want != IMS_DTYPE_F32 && want != IMS_DTYPE_F16)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "%s: dtype %s (f32 or f16 only)", what, ims_dtype_name(want));
    return IMS_OK;
}

static ims_status check_int_dims(const ims_tensor *t, const char *what, ims_error *err)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > INT_MAX)
            return ims_fail(err, IMS_ERR_UNSUPPORTED, "%s: dim %d is %lld, beyond int range", what, d,
                            (long long)t->shape[d]);
    if (ims_tensor_numel(t) <= 0)
        return ims_fail(err, IMS_ERR_ARGUMENT, "%s: no elements", what);
    return IMS_OK;
}

ims_status ims_op_conv2d(ims_backend *be, const ims_conv2d_params *p, const ims_tensor *x, const ims_tensor *w,
                         const ims_tensor *bias, ims_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "conv2d x", err);
    if (!st) st = check_placement(be, w, "conv2d w", err);
    if (!st && bias) st = check_placement(be, bias, "conv2d bias", err);
    if (!st) st = check_placement(be, y, "conv2d y", err);
    if (st)
        return st;
    if (p->precision < IMS_PRECISION_FP32 || p->precision > IMS_PRECISION_FP16)
        return ims_fail(err, IMS_ERR_ARGUMENT, "conv2d: unknown precision %d", (int)p->precision);
    if (be->memory == IMS_MEMORY_HOST && p->precision != IMS_PRECISION_FP32)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "conv2d: precision %s needs the CUDA backend",
                        ims_precision_name(p->precision));
    ims_dtype dt = p->precision == IMS_PRECISION_FP16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    st = check_act_dtype(be, x, dt, "conv2d x", err);
    if (!st) st = check_act_dtype(be, w, dt, "conv2d w", err);
    if (!st) st = check_act_dtype(be, y, dt, "conv2d y", err);
    if (!st) st = ims_tensor_expect(x, "conv2d x", dt, 4, (int64_t[]){-1, -1, -1, -1}, err);
    if (!st) st = ims_tensor_expect(w, "conv2d w", dt, 4, (int64_t[]){-1, -1, -1, x->shape[3]}, err);
    if (!st && bias) st = ims_tensor_expect(bias, "conv2d bias", dt, 1, (int64_t[]){w->shape[0]}, err);
    if (!st) st = check_int_dims(x, "conv2d x", err);
    if (!st) st = check_int_dims(w, "conv2d w", err);
    if (st)
        return st;
    if (p->stride_h < 1 || p->stride_w < 1 || p->pad_h < 0 || p->pad_w < 0 || p->y_channel_offset < 0)
        return ims_fail(err, IMS_ERR_ARGUMENT, "conv2d: stride (%d, %d), pad (%d, %d), channel offset %d",
                        p->stride_h, p->stride_w, p->pad_h, p->pad_w, p->y_channel_offset);
    int64_t oh = ims_conv_out_size(x->shape[1], (int)w->shape[1], p->stride_h, p->pad_h);
    int64_t ow = ims_conv_out_size(x->shape[2], (int)w->shape[2], p->stride_w, p->pad_w);
    if (oh < 1 || ow < 1)
        return ims_fail(err, IMS_ERR_ARGUMENT, "conv2d: a %lldx%lld filter does not fit a %lldx%lld input",
                        (long long)w->shape[1], (long long)w->shape[2], (long long)x->shape[1],
                        (long long)x->shape[2]);
    st = ims_tensor_expect(y, "conv2d y", dt, 4, (int64_t[]){x->shape[0], oh, ow, -1}, err);
    if (!st) st = check_int_dims(y, "conv2d y", err);
    if (!st && p->y_channel_offset + w->shape[0] > y->shape[3])
        st = ims_fail(err, IMS_ERR_ARGUMENT, "conv2d: channels [%d, %lld) do not fit y's %lld", p->y_channel_offset,
                      (long long)(p->y_channel_offset + w->shape[0]), (long long)y->shape[3]);
    return st ? st : be->ops->conv2d(be, p, x, w, bias, y, err);
}

ims_status ims_op_pool2d(ims_backend *be, const ims_pool2d_params *p, const ims_tensor *x, ims_tensor *y,
                         ims_error *err)
{
    ims_status st = check_placement(be, x, "pool2d x", err);
    if (!st) st = check_placement(be, y, "pool2d y", err);
    if (!st) st = check_act_dtype(be, x, x->dtype, "pool2d x", err);
    if (!st) st = ims_tensor_expect(x, "pool2d x", x->dtype, 4, (int64_t[]){-1, -1, -1, -1}, err);
    if (!st) st = check_int_dims(x, "pool2d x", err);
    if (st)
        return st;
    if ((p->kind != IMS_POOL_MAX && p->kind != IMS_POOL_AVG) || p->k < 1 || p->stride < 1 || p->pad < 0 ||
        p->pad * 2 >= p->k + 1 || p->y_channel_offset < 0)
        return ims_fail(err, IMS_ERR_ARGUMENT, "pool2d: kind %d, k %d, stride %d, pad %d, channel offset %d",
                        (int)p->kind, p->k, p->stride, p->pad, p->y_channel_offset);
    int64_t oh = ims_conv_out_size(x->shape[1], p->k, p->stride, p->pad);
    int64_t ow = ims_conv_out_size(x->shape[2], p->k, p->stride, p->pad);
    if (oh < 1 || ow < 1)
        return ims_fail(err, IMS_ERR_ARGUMENT, "pool2d: a %dx%d window does not fit a %lldx%lld input", p->k, p->k,
                        (long long)x->shape[1], (long long)x->shape[2]);
    st = ims_tensor_expect(y, "pool2d y", x->dtype, 4, (int64_t[]){x->shape[0], oh, ow, -1}, err);
    if (!st) st = check_int_dims(y, "pool2d y", err);
    if (!st && p->y_channel_offset + x->shape[3] > y->shape[3])
        st = ims_fail(err, IMS_ERR_ARGUMENT, "pool2d: channels [%d, %lld) do not fit y's %lld", p->y_channel_offset,
                      (long long)(p->y_channel_offset + x->shape[3]), (long long)y->shape[3]);
    return st ? st : be->ops->pool2d(be, p, x, y, err);
}

ims_status ims_op_global_avg_pool(ims_backend *be, const ims_tensor *x, ims_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "global_avg_pool x", err);
    if (!st) st = check_placement(be, y, "global_avg_pool y", err);
    if (!st) st = check_act_dtype(be, x, x->dtype, "global_avg_pool x", err);
    if (!st) st = ims_tensor_expect(x, "global_avg_pool x", x->dtype, 4, (int64_t[]){-1, -1, -1, -1}, err);
    if (!st) st = check_int_dims(x, "global_avg_pool x", err);
    if (!st)
        st = ims_tensor_expect(y, "global_avg_pool y", IMS_DTYPE_F32, 2, (int64_t[]){x->shape[0], x->shape[3]}, err);
    return st ? st : be->ops->global_avg_pool(be, x, y, err);
}

ims_status ims_op_input_u8(ims_backend *be, const ims_tensor *x, const float scale[3], const float shift[3],
                           ims_tensor *y, ims_error *err)
{
    ims_status st = check_placement(be, x, "input_u8 x", err);
    if (!st) st = check_placement(be, y, "input_u8 y", err);
    if (!st) st = ims_tensor_expect(x, "input_u8 x", IMS_DTYPE_U8, 4, (int64_t[]){-1, -1, -1, 3}, err);
    if (!st) st = check_int_dims(x, "input_u8 x", err);
    if (!st) st = check_act_dtype(be, y, y->dtype, "input_u8 y", err);
    if (!st)
        st = ims_tensor_expect(y, "input_u8 y", y->dtype, 4, (int64_t[]){x->shape[0], x->shape[1], x->shape[2], 3},
                               err);
    return st ? st : be->ops->input_u8(be, x, scale, shift, y, err);
}

int ims_backend_has_graphs(const ims_backend *be) { return be->ops->capture_begin != NULL; }

ims_status ims_backend_capture_begin(ims_backend *be, ims_error *err)
{
    if (!be->ops->capture_begin)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "backend %s has no graph capture", be->info.name);
    return be->ops->capture_begin(be, err);
}

ims_status ims_backend_capture_end(ims_backend *be, void **graph, ims_error *err)
{
    *graph = NULL;
    if (!be->ops->capture_end)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "backend %s has no graph capture", be->info.name);
    return be->ops->capture_end(be, graph, err);
}

ims_status ims_backend_graph_launch(ims_backend *be, void *graph, ims_error *err)
{
    if (!be->ops->graph_launch || !graph)
        return ims_fail(err, IMS_ERR_ARGUMENT, "graph_launch: no graph on backend %s", be->info.name);
    return be->ops->graph_launch(be, graph, err);
}

void ims_backend_graph_free(ims_backend *be, void *graph)
{
    if (graph && be->ops->graph_free)
        be->ops->graph_free(be, graph);
}
