/* checkpoint.c: tensor validation and element gathering for
 * source checkpoints (checkpoint.h). */
#include "checkpoint.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t imsi_ckpt_dtype_size(ckpt_dtype dtype)
{
    static const size_t sizes[CKPT_DTYPE_COUNT] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
    return (unsigned)dtype < CKPT_DTYPE_COUNT ? sizes[dtype] : 0;
}

const char *imsi_ckpt_dtype_name(ckpt_dtype dtype)
{
    static const char *const names[CKPT_DTYPE_COUNT] = {"float32", "float64", "float16", "bfloat16", "int64",
                                                        "int32",   "int16",   "int8",    "uint8",    "bool"};
    return (unsigned)dtype < CKPT_DTYPE_COUNT ? names[dtype] : "?";
}

const char *imsi_ckpt_format_name(ckpt_format format)
{
    switch (format) {
    case CKPT_FORMAT_TORCH_ZIP: return "PyTorch zip";
    case CKPT_FORMAT_TORCH_LEGACY: return "PyTorch legacy";
    case CKPT_FORMAT_SAFETENSORS: return "safetensors";
    }
    return "?";
}

int64_t imsi_ckpt_tensor_numel(const ckpt_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d]; /* bounded by imsi_ckpt_add_tensor */
    return n;
}

/* ---- Validation ---------------------------------------------------------------- */

static ims_status check_tensor(const ckpt_tensor *t, ims_error *err)
{
    size_t es = imsi_ckpt_dtype_size(t->dtype);
    if (es == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "unknown dtype %d", (int)t->dtype);
    if (t->ndim < 0 || t->ndim > CKPT_MAX_DIMS)
        return ims_error_set(err, IMS_ERR_FORMAT, "ndim %d is outside 0..%d", t->ndim, CKPT_MAX_DIMS);
    if (t->storage_offset < 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "storage offset %lld is negative", (long long)t->storage_offset);
    uint64_t storage_numel = t->storage_nbytes / es;
    if (t->storage_nbytes % es != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "storage of %llu bytes is not a whole number of %s elements",
                             (unsigned long long)t->storage_nbytes, imsi_ckpt_dtype_name(t->dtype));
    /* The last element reached is offset + sum((shape - 1) * stride); with any
     * dim 0 nothing is reached. Every step is checked against 2^62. */
    const uint64_t limit = 1ull << 62;
    uint64_t last = (uint64_t)t->storage_offset, numel = 1;
    int empty = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || (uint64_t)t->shape[d] > limit)
            return ims_error_set(err, IMS_ERR_FORMAT, "shape[%d] = %lld is out of range", d, (long long)t->shape[d]);
        if (t->stride[d] < 0 || (uint64_t)t->stride[d] > limit)
            return ims_error_set(err, IMS_ERR_FORMAT, "stride[%d] = %lld is out of range", d, (long long)t->stride[d]);
        if (t->shape[d] == 0) {
            empty = 1;
            continue;
        }
        uint64_t extent = (uint64_t)(t->shape[d] - 1);
        if (extent && (uint64_t)t->stride[d] > (limit - last) / extent)
            return ims_error_set(err, IMS_ERR_FORMAT, "shape and strides overflow at dim %d", d);
        last += extent * (uint64_t)t->stride[d];
        if ((uint64_t)t->shape[d] > limit / numel)
            return ims_error_set(err, IMS_ERR_FORMAT, "element count overflows at dim %d", d);
        numel *= (uint64_t)t->shape[d];
    }
    if (!empty && last >= storage_numel)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "reaches element %llu of a storage of %llu %s elements (offset %lld, shape and strides past the end)",
                             (unsigned long long)last, (unsigned long long)storage_numel, imsi_ckpt_dtype_name(t->dtype),
                             (long long)t->storage_offset);
    return IMS_OK;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of name in the table: its tensor's, or the empty one where it would go. */
static size_t name_slot(const ckpt *c, const char *name)
{
    size_t mask = c->by_name_cap - 1, i = (size_t)name_hash(name) & mask;
    while (c->by_name[i] && strcmp(c->tensors[c->by_name[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Keeps the table at most half full (a checkpoint can hold 10^5 tensors: a
 * linear search per added tensor made reading one quadratic). */
static ims_status name_table_reserve(ckpt *c, size_t count, ims_error *err)
{
    if (c->by_name_cap >= 2 * count && c->by_name_cap)
        return IMS_OK;
    size_t cap = c->by_name_cap ? c->by_name_cap : 256;
    while (cap < 2 * count)
        cap *= 2;
    size_t *table = calloc(cap, sizeof *table);
    if (!table)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu tensor names", count);
    free(c->by_name);
    c->by_name = table;
    c->by_name_cap = cap;
    for (size_t t = 0; t < c->count; t++)
        c->by_name[name_slot(c, c->tensors[t].name)] = t + 1;
    return IMS_OK;
}

ims_status imsi_ckpt_add_tensor(ckpt *c, const ckpt_tensor *t, ims_error *err)
{
    if (!t->name || !t->name[0])
        return ims_error_set(err, IMS_ERR_FORMAT, "a tensor has an empty name");
    ims_status st = check_tensor(t, err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%s'", t->name);
    if (t->storage_nbytes && (t->storage < c->data || t->storage > c->data + c->size ||
                              t->storage_nbytes > (uint64_t)(c->data + c->size - t->storage)))
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': storage lies outside the file", t->name);
    if (imsi_ckpt_find(c, t->name))
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s' appears twice", t->name);
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        ckpt_tensor *p = realloc(c->tensors, cap * sizeof *p);
        if (!p)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory adding tensor '%s'", t->name);
        c->tensors = p;
        c->cap = cap;
    }
    ims_status st2 = name_table_reserve(c, c->count + 1, err);
    if (st2)
        return st2;
    ckpt_tensor copy = *t;
    if (!(copy.name = strdup(t->name)))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory adding tensor '%s'", t->name);
    for (int d = copy.ndim; d < CKPT_MAX_DIMS; d++)
        copy.shape[d] = 1, copy.stride[d] = 0;
    c->tensors[c->count++] = copy;
    c->by_name[name_slot(c, copy.name)] = c->count;
    return IMS_OK;
}

/* Linear search: checkpoints have hundreds of tensors, and readers check each
 * name once. */
ims_status imsi_ckpt_strip_prefix(ckpt *c, const char *prefix, ims_error *err)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < c->count; i++)
        if (strncmp(c->tensors[i].name, prefix, n) != 0)
            return IMS_OK;
    for (size_t i = 0; i < c->count; i++)
        memmove(c->tensors[i].name, c->tensors[i].name + n, strlen(c->tensors[i].name + n) + 1);
    /* The names changed: index them again (no two can collide: all lost the same prefix). */
    free(c->by_name);
    c->by_name = NULL;
    c->by_name_cap = 0;
    return name_table_reserve(c, c->count, err);
}

const ckpt_tensor *imsi_ckpt_find(const ckpt *c, const char *name)
{
    if (!c->by_name_cap)
        return NULL;
    size_t i = c->by_name[name_slot(c, name)];
    return i ? &c->tensors[i - 1] : NULL;
}

/* ---- Element access ------------------------------------------------------------ */

static uint64_t load_bits(const unsigned char *p, size_t size, int big_endian)
{
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++)
        v |= (uint64_t)p[big_endian ? size - 1 - i : i] << (8 * i);
    return v;
}

static double element_f64(const ckpt_tensor *t, uint64_t index)
{
    size_t es = imsi_ckpt_dtype_size(t->dtype);
    uint64_t b = load_bits(t->storage + index * es, es, t->big_endian);
    switch (t->dtype) {
    case CKPT_F32: {
        float f;
        uint32_t u = (uint32_t)b;
        memcpy(&f, &u, 4);
        return f;
    }
    case CKPT_F64: {
        double d;
        memcpy(&d, &b, 8);
        return d;
    }
    case CKPT_F16: return ims_f16_to_f32((uint16_t)b);
    case CKPT_BF16: {
        float f;
        uint32_t u = (uint32_t)b << 16;
        memcpy(&f, &u, 4);
        return f;
    }
    case CKPT_I64: return (double)(int64_t)b;
    case CKPT_I32: return (double)(int32_t)(uint32_t)b;
    case CKPT_I16: return (double)(int16_t)(uint16_t)b;
    case CKPT_I8: return (double)(int8_t)(uint8_t)b;
    case CKPT_U8: return (double)(uint8_t)b;
    case CKPT_BOOL: return b != 0;
    case CKPT_DTYPE_COUNT: break;
    }
    return NAN;
}

/* Calls fn(ctx, i, storage_index) for each element i in row-major order. */
static void gather(const ckpt_tensor *t, void (*fn)(void *, uint64_t, double), void *ctx)
{
    int64_t numel = imsi_ckpt_tensor_numel(t);
    int64_t idx[CKPT_MAX_DIMS] = {0};
    uint64_t pos = (uint64_t)t->storage_offset;
    for (int64_t i = 0; i < numel; i++) {
        fn(ctx, (uint64_t)i, element_f64(t, pos));
        for (int d = t->ndim - 1; d >= 0; d--) { /* odometer over the dims, last fastest */
            if (++idx[d] < t->shape[d]) {
                pos += (uint64_t)t->stride[d];
                break;
            }
            pos -= (uint64_t)t->stride[d] * (uint64_t)(t->shape[d] - 1);
            idx[d] = 0;
        }
    }
}

static void put_f64(void *ctx, uint64_t i, double v) { ((double *)ctx)[i] = v; }
static void put_f32(void *ctx, uint64_t i, double v) { ((float *)ctx)[i] = (float)v; }

void imsi_ckpt_tensor_read_f64(const ckpt_tensor *t, double *dst) { gather(t, put_f64, dst); }
void imsi_ckpt_tensor_read_f32(const ckpt_tensor *t, float *dst) { gather(t, put_f32, dst); }

void imsi_ckpt_free(ckpt *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++)
        free(c->tensors[i].name);
    free(c->tensors);
    free(c->by_name);
    imsi_file_map_close(&c->map);
    free(c);
}
