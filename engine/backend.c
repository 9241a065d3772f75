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

/* --- top-k search --- */
ims_status ims_op_knn_select(ims_backend *be, const ims_tensor *table, const ims_tensor *queries, int k, int path,
                             ims_tensor *ids, ims_tensor *scores, ims_error *err)
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
        return ims_fail(err, IMS_ERR_ARGUMENT, "knn table: dtype %s (f32 or f16)", ims_dtype_name(table->dtype));
    if ((st = ims_tensor_expect(table, "knn table", table->dtype, 2, (int64_t[]){-1, -1}, err)))
        return st;
    int64_t n = table->shape[0], d = table->shape[1];
    if ((st = ims_tensor_expect(queries, "knn queries", IMS_DTYPE_F32, 2, (int64_t[]){-1, d}, err)))
        return st;
    int64_t b = queries->shape[0];
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_fail(err, IMS_ERR_ARGUMENT, "knn: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    int64_t kk = k < n ? k : n;
    if ((st = ims_tensor_expect(ids, "knn ids", IMS_DTYPE_I32, 2, (int64_t[]){b, kk}, err)) ||
        (st = ims_tensor_expect(scores, "knn scores", IMS_DTYPE_F32, 2, (int64_t[]){b, kk}, err)))
        return st;
    if (n > INT32_MAX || d > INT32_MAX || b > INT32_MAX)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "knn: table (%lld, %lld) or %lld queries exceed int range",
                        (long long)n, (long long)d, (long long)b);
    return be->ops->knn_select(be, table, queries, k, path, ids, scores, err);
}
