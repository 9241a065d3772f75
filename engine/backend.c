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

/* --- text encoder --- */

/* Activations: f32 or f16. */
static ims_status check_act_dtype(const ims_tensor *t, const char *what, ims_error *err)
{
    if (t->dtype != IMS_DTYPE_F32 && t->dtype != IMS_DTYPE_F16)
        return ims_fail(err, IMS_ERR_UNSUPPORTED, "%s: dtype %s (f32 or f16 expected)", what,
                        ims_dtype_name(t->dtype));
    return IMS_OK;
}

/* Placement of n tensors (NULL entries skipped), with their names. */
static ims_status check_placements(const ims_backend *be, int n, const ims_tensor *const *ts,
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
            return ims_fail(err, IMS_ERR_UNSUPPORTED, "%s: size %lld exceeds int range", op, (long long)dims[i]);
    return IMS_OK;
}

static ims_status check_eps(const char *op, double eps, ims_error *err)
{
    if (!(eps > 0.0 && eps < 1.0))
        return ims_fail(err, IMS_ERR_ARGUMENT, "%s: eps %g outside (0, 1)", op, eps);
    return IMS_OK;
}

ims_status ims_op_embed_layernorm(ims_backend *be, const ims_tensor *ids, const ims_tensor *word,
                                  const ims_tensor *pos, const ims_tensor *type, const ims_tensor *gamma,
                                  const ims_tensor *beta, double eps, ims_tensor *y, ims_error *err)
{
    const ims_tensor *ts[] = {ids, word, pos, type, gamma, beta, y};
    const char *names[] = {"embed ids", "embed word", "embed pos", "embed type", "embed gamma", "embed beta",
                           "embed y"};
    ims_status st = check_placements(be, 7, ts, names, err);
    if (!st)
        st = ims_tensor_expect(ids, "embed ids", IMS_DTYPE_I32, 2, (int64_t[]){-1, -1}, err);
    if (!st)
        st = ims_tensor_expect(word, "embed word", IMS_DTYPE_F32, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t b = ids->shape[0], t = ids->shape[1], h = word->shape[1];
    st = ims_tensor_expect(pos, "embed pos", IMS_DTYPE_F32, 2, (int64_t[]){-1, h}, err);
    if (!st)
        st = ims_tensor_expect(type, "embed type", IMS_DTYPE_F32, 2, (int64_t[]){-1, h}, err);
    if (!st)
        st = ims_tensor_expect(gamma, "embed gamma", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = ims_tensor_expect(beta, "embed beta", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = check_act_dtype(y, "embed y", err);
    if (!st)
        st = ims_tensor_expect(y, "embed y", y->dtype, 3, (int64_t[]){b, t, h}, err);
    if (!st && pos->shape[0] < t)
        st = ims_fail(err, IMS_ERR_ARGUMENT, "embed: %lld tokens but %lld positions", (long long)t,
                      (long long)pos->shape[0]);
    if (!st)
        st = check_eps("embed", eps, err);
    if (!st)
        st = check_int_range("embed", 4, (int64_t[]){b * t, h, word->shape[0], b * t * h}, err);
    return st ? st : be->ops->embed_layernorm(be, ids, word, pos, type, gamma, beta, eps, y, err);
}

ims_status ims_op_bias_act(ims_backend *be, const ims_tensor *x, const ims_tensor *bias, ims_act act,
                           ims_tensor *y, ims_error *err)
{
    const ims_tensor *ts[] = {x, bias, y};
    const char *names[] = {"bias_act x", "bias_act bias", "bias_act y"};
    ims_status st = check_placements(be, 3, ts, names, err);
    if (!st)
        st = check_act_dtype(x, "bias_act x", err);
    if (!st)
        st = ims_tensor_expect(x, "bias_act x", x->dtype, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], n = x->shape[1];
    st = ims_tensor_expect(bias, "bias_act bias", IMS_DTYPE_F32, 1, (int64_t[]){n}, err);
    if (!st)
        st = ims_tensor_expect(y, "bias_act y", x->dtype, 2, (int64_t[]){m, n}, err);
    if (!st && act != IMS_ACT_NONE && act != IMS_ACT_GELU)
        st = ims_fail(err, IMS_ERR_ARGUMENT, "bias_act: unknown activation %d", (int)act);
    if (!st)
        st = check_int_range("bias_act", 3, (int64_t[]){m, n, m * n}, err);
    return st ? st : be->ops->bias_act(be, x, bias, act, y, err);
}

ims_status ims_op_add_layernorm(ims_backend *be, const ims_tensor *x, const ims_tensor *bias,
                                const ims_tensor *residual, const ims_tensor *gamma, const ims_tensor *beta,
                                double eps, ims_tensor *y, ims_error *err)
{
    const ims_tensor *ts[] = {x, bias, residual, gamma, beta, y};
    const char *names[] = {"add_layernorm x", "add_layernorm bias", "add_layernorm residual",
                           "add_layernorm gamma", "add_layernorm beta", "add_layernorm y"};
    ims_status st = check_placements(be, 6, ts, names, err);
    if (!st)
        st = check_act_dtype(x, "add_layernorm x", err);
    if (!st)
        st = ims_tensor_expect(x, "add_layernorm x", x->dtype, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], h = x->shape[1];
    if (bias)
        st = ims_tensor_expect(bias, "add_layernorm bias", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = ims_tensor_expect(residual, "add_layernorm residual", x->dtype, 2, (int64_t[]){m, h}, err);
    if (!st)
        st = ims_tensor_expect(gamma, "add_layernorm gamma", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = ims_tensor_expect(beta, "add_layernorm beta", IMS_DTYPE_F32, 1, (int64_t[]){h}, err);
    if (!st)
        st = ims_tensor_expect(y, "add_layernorm y", x->dtype, 2, (int64_t[]){m, h}, err);
    if (!st && y->data == x->data)
        st = ims_fail(err, IMS_ERR_ARGUMENT, "add_layernorm: y may alias residual, not x");
    if (!st)
        st = check_eps("add_layernorm", eps, err);
    if (!st)
        st = check_int_range("add_layernorm", 3, (int64_t[]){m, h, m * h}, err);
    return st ? st : be->ops->add_layernorm(be, x, bias, residual, gamma, beta, eps, y, err);
}

ims_status ims_op_attention(ims_backend *be, const ims_tensor *qkv, const ims_tensor *lengths, int heads,
                            ims_tensor *scores, ims_tensor *ctx, ims_error *err)
{
    const ims_tensor *ts[] = {qkv, lengths, scores, ctx};
    const char *names[] = {"attention qkv", "attention lengths", "attention scores", "attention ctx"};
    ims_status st = check_placements(be, 4, ts, names, err);
    if (!st)
        st = check_act_dtype(qkv, "attention qkv", err);
    if (!st)
        st = ims_tensor_expect(qkv, "attention qkv", qkv->dtype, 3, (int64_t[]){-1, -1, -1}, err);
    if (st)
        return st;
    int64_t b = qkv->shape[0], t = qkv->shape[1], h3 = qkv->shape[2];
    if (h3 % 3 != 0 || heads < 1 || (h3 / 3) % heads != 0)
        return ims_fail(err, IMS_ERR_ARGUMENT, "attention: qkv width %lld is not 3 x heads (%d) x head size",
                        (long long)h3, heads);
    int64_t h = h3 / 3;
    st = ims_tensor_expect(lengths, "attention lengths", IMS_DTYPE_I32, 1, (int64_t[]){b}, err);
    if (!st)
        st = ims_tensor_expect(scores, "attention scores", qkv->dtype, 4, (int64_t[]){b, heads, t, t}, err);
    if (!st)
        st = ims_tensor_expect(ctx, "attention ctx", qkv->dtype, 3, (int64_t[]){b, t, h}, err);
    if (!st)
        st = check_int_range("attention", 3, (int64_t[]){b * t * h3, b * heads, t * t}, err);
    return st ? st : be->ops->attention(be, qkv, lengths, heads, scores, ctx, err);
}

ims_status ims_op_pool_normalize(ims_backend *be, const ims_tensor *x, const ims_tensor *lengths,
                                 ims_pooling pooling, int normalize, ims_tensor *y, ims_error *err)
{
    const ims_tensor *ts[] = {x, lengths, y};
    const char *names[] = {"pool x", "pool lengths", "pool y"};
    ims_status st = check_placements(be, 3, ts, names, err);
    if (!st)
        st = check_act_dtype(x, "pool x", err);
    if (!st)
        st = ims_tensor_expect(x, "pool x", x->dtype, 3, (int64_t[]){-1, -1, -1}, err);
    if (st)
        return st;
    int64_t b = x->shape[0], t = x->shape[1], h = x->shape[2];
    st = ims_tensor_expect(lengths, "pool lengths", IMS_DTYPE_I32, 1, (int64_t[]){b}, err);
    if (!st)
        st = ims_tensor_expect(y, "pool y", IMS_DTYPE_F32, 2, (int64_t[]){b, h}, err);
    if (!st && pooling != IMS_POOLING_MEAN && pooling != IMS_POOLING_CLS)
        st = ims_fail(err, IMS_ERR_ARGUMENT, "pool: unknown pooling %d", (int)pooling);
    if (!st)
        st = check_int_range("pool", 2, (int64_t[]){b * t * h, h}, err);
    return st ? st : be->ops->pool_normalize(be, x, lengths, pooling, normalize, y, err);
}

ims_status ims_op_linear_f16(ims_backend *be, const ims_tensor *x, const ims_tensor *w, ims_tensor *y,
                             ims_error *err)
{
    const ims_tensor *ts[] = {x, w, y};
    const char *names[] = {"linear_f16 x", "linear_f16 w", "linear_f16 y"};
    ims_status st = check_placements(be, 3, ts, names, err);
    if (!st)
        st = ims_tensor_expect(x, "linear_f16 x", IMS_DTYPE_F16, 2, (int64_t[]){-1, -1}, err);
    if (st)
        return st;
    int64_t m = x->shape[0], k = x->shape[1];
    st = ims_tensor_expect(w, "linear_f16 w", IMS_DTYPE_F16, 2, (int64_t[]){-1, k}, err);
    if (st)
        return st;
    int64_t n = w->shape[0];
    st = ims_tensor_expect(y, "linear_f16 y", IMS_DTYPE_F16, 2, (int64_t[]){m, n}, err);
    if (!st)
        st = check_int_range("linear_f16", 3, (int64_t[]){m, n, k}, err);
    return st ? st : be->ops->linear_f16(be, x, w, y, err);
}
