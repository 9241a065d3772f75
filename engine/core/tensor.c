/* tensor.c: tensor construction, size arithmetic (overflow-checked), checks. */
#include "core/tensor.h"

#include "core/error.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

ims_status imsi_shape_numel(int ndim, const int64_t *shape, int64_t *numel, ims_error *err)
{
    if (ndim < 0 || ndim > IMS_MAX_DIMS)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "ndim %d is outside 0..%d", ndim, IMS_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "shape[%d] = %lld must be at least 1", i,
                                 (long long)shape[i]);
        if (n > INT64_MAX / shape[i])
            return ims_error_set(err, IMS_ERR_ARGUMENT, "shape product overflows at shape[%d] = %lld",
                                 i, (long long)shape[i]);
        n *= shape[i];
    }
    *numel = n;
    return IMS_OK;
}

ims_status imsi_tensor_init(void *data, ims_dtype dtype, int ndim, const int64_t *shape,
                            imsi_memory memory, imsi_tensor *t, ims_error *err)
{
    memset(t, 0, sizeof *t);
    if (ims_dtype_size(dtype) == 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "unknown dtype %d", (int)dtype);
    int64_t numel;
    ims_status st = imsi_shape_numel(ndim, shape, &numel, err);
    if (st)
        return st;
    if ((uint64_t)numel > SIZE_MAX / ims_dtype_size(dtype))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%lld elements of %s overflow size_t",
                             (long long)numel, ims_dtype_name(dtype));
    t->data = data;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < IMS_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 1;
    t->memory = memory;
    return IMS_OK;
}

imsi_tensor imsi_tensor_host(void *data, ims_dtype dtype, int ndim, const int64_t *shape)
{
    imsi_tensor t;
    if (imsi_tensor_init(data, dtype, ndim, shape, IMS_MEMORY_HOST, &t, NULL))
        memset(&t, 0, sizeof t);
    return t;
}

imsi_tensor imsi_tensor_view(const imsi_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    imsi_tensor v = *t;
    v.backend = NULL; /* a view does not own the memory */
    v.ndim = ndim;
    const int64_t d[IMS_MAX_DIMS] = {d0, d1, d2, d3};
    for (int i = 0; i < IMS_MAX_DIMS; i++)
        v.shape[i] = i < ndim ? d[i] : 1;
    assert(ndim >= 1 && ndim <= IMS_MAX_DIMS && imsi_tensor_numel(&v) <= imsi_tensor_numel(t));
    return v;
}

int64_t imsi_tensor_numel(const imsi_tensor *t)
{
    int64_t n;
    return imsi_shape_numel(t->ndim, t->shape, &n, NULL) ? 0 : n;
}

size_t imsi_tensor_nbytes(const imsi_tensor *t)
{
    int64_t n = imsi_tensor_numel(t);
    size_t es = ims_dtype_size(t->dtype);
    if (es == 0 || (uint64_t)n > SIZE_MAX / es)
        return 0;
    return (size_t)n * es;
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

const char *imsi_tensor_describe(const imsi_tensor *t, char *buf, size_t size)
{
    char s[80];
    shape_text(t->ndim, t->shape, s, sizeof s);
    snprintf(buf, size, "%s %s", s, ims_dtype_name(t->dtype));
    return buf;
}

ims_status imsi_tensor_expect(const imsi_tensor *t, const char *what, ims_dtype dtype, int ndim,
                              const int64_t *shape, ims_error *err)
{
    int ok = t->data != NULL && t->dtype == dtype && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = shape[i] < 0 || shape[i] == t->shape[i];
    if (ok)
        return IMS_OK;
    char want[80], have[96];
    shape_text(ndim, shape, want, sizeof want);
    if (!t->data)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: tensor has no data", what);
    return ims_error_set(err, IMS_ERR_ARGUMENT, "%s: expected %s %s (-1 = any), got %s", what, want,
                         ims_dtype_name(dtype), imsi_tensor_describe(t, have, sizeof have));
}
