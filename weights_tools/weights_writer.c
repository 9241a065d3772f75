/* weights_writer.c: serializes metadata and tensors into the .isw layout.
 *
 * Metadata is encoded into a byte buffer as it is added; the tensor directory
 * is encoded at write time, once the data offsets are laid out. The file is
 * emitted through one sink function so that the file and memory paths share
 * every byte of the layout code.
 */
#include "weights_writer.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/weights_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytes {
    unsigned char *data;
    size_t len, cap;
} bytes;

typedef struct pending_tensor {
    char *name;
    ims_dtype dtype;
    int ndim;
    int64_t shape[IMS_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    void *owned; /* freed with the writer */
} pending_tensor;

struct imsi_weights_writer {
    uint32_t alignment;
    bytes metadata;
    uint64_t metadata_count;
    char **keys; /* for duplicate checks */
    pending_tensor *tensors;
    size_t tensor_count, tensor_cap;
};

static int bytes_reserve(bytes *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return 0;
        cap *= 2;
    }
    unsigned char *p = realloc(b->data, cap);
    if (!p)
        return 0;
    b->data = p;
    b->cap = cap;
    return 1;
}

static int bytes_put(bytes *b, const void *src, size_t n)
{
    if (!bytes_reserve(b, n))
        return 0;
    if (n)
        memcpy(b->data + b->len, src, n);
    b->len += n;
    return 1;
}

static int bytes_u32(bytes *b, uint32_t v)
{
    unsigned char tmp[4];
    isw_store_u32(tmp, v);
    return bytes_put(b, tmp, 4);
}

static int bytes_u64(bytes *b, uint64_t v)
{
    unsigned char tmp[8];
    isw_store_u64(tmp, v);
    return bytes_put(b, tmp, 8);
}

static int bytes_str(bytes *b, const char *s, size_t len)
{
    return bytes_u32(b, (uint32_t)len) && bytes_put(b, s, len);
}

ims_status imsi_weights_writer_create(imsi_weights_writer **out, ims_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate a weights writer");
    (*out)->alignment = ISW_ALIGNMENT_DEFAULT;
    return IMS_OK;
}

void imsi_weights_writer_free(imsi_weights_writer *wr)
{
    if (!wr)
        return;
    for (uint64_t i = 0; i < wr->metadata_count; i++)
        free(wr->keys[i]);
    free(wr->keys);
    for (size_t i = 0; i < wr->tensor_count; i++) {
        free(wr->tensors[i].name);
        free(wr->tensors[i].owned);
    }
    free(wr->tensors);
    free(wr->metadata.data);
    free(wr);
}

ims_status imsi_weights_writer_set_alignment(imsi_weights_writer *wr, uint32_t a, ims_error *err)
{
    if (a < ISW_ALIGNMENT_MIN || a > ISW_ALIGNMENT_MAX || (a & (a - 1)) != 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "alignment %u is not a power of two in %u..%u", a,
                             ISW_ALIGNMENT_MIN, ISW_ALIGNMENT_MAX);
    wr->alignment = a;
    return IMS_OK;
}

/* A name the reader would reject is the caller's mistake here, not a bad file. */
static ims_status as_argument_error(ims_error *err)
{
    if (err)
        err->code = IMS_ERR_ARGUMENT;
    return IMS_ERR_ARGUMENT;
}

/* Checks the key and starts an entry: key and type. On failure the metadata
 * buffer is rolled back by the caller through `mark`. */
static ims_status begin_entry(imsi_weights_writer *wr, const char *key, ims_meta_type type, size_t *mark,
                              ims_error *err)
{
    size_t len = strlen(key);
    if (imsi_isw_check_name(key, len, ISW_KEY_MAX, "metadata key", err))
        return as_argument_error(err);
    for (uint64_t i = 0; i < wr->metadata_count; i++)
        if (strcmp(wr->keys[i], key) == 0)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "duplicate metadata key '%s'", key);
    *mark = wr->metadata.len;
    if (!bytes_str(&wr->metadata, key, len) || !bytes_u32(&wr->metadata, (uint32_t)type))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory adding metadata key '%s'", key);
    return IMS_OK;
}

static ims_status end_entry(imsi_weights_writer *wr, const char *key, int ok, size_t mark, ims_error *err)
{
    char **keys = ok ? realloc(wr->keys, (wr->metadata_count + 1) * sizeof *keys) : NULL;
    char *copy = keys ? strdup(key) : NULL;
    if (keys)
        wr->keys = keys;
    if (!copy) {
        wr->metadata.len = mark;
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory adding metadata key '%s'", key);
    }
    wr->keys[wr->metadata_count++] = copy;
    return IMS_OK;
}

static ims_status check_string(const char *key, const char *s, size_t *len, ims_error *err)
{
    *len = strlen(s);
    if (*len > ISW_STRING_MAX)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "metadata '%s': string of %zu bytes is too long", key, *len);
    if (!imsi_isw_utf8_valid(s, *len))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "metadata '%s': string is not valid UTF-8", key);
    return IMS_OK;
}

static ims_status add_scalar(imsi_weights_writer *wr, const char *key, ims_meta_type type, uint64_t bits,
                             ims_error *err)
{
    size_t mark;
    ims_status st = begin_entry(wr, key, type, &mark, err);
    return st ? st : end_entry(wr, key, bytes_u64(&wr->metadata, bits), mark, err);
}

ims_status imsi_weights_writer_add_i64(imsi_weights_writer *wr, const char *key, int64_t value, ims_error *err)
{
    return add_scalar(wr, key, IMS_META_I64, (uint64_t)value, err);
}

ims_status imsi_weights_writer_add_f64(imsi_weights_writer *wr, const char *key, double value, ims_error *err)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    return add_scalar(wr, key, IMS_META_F64, bits, err);
}

ims_status imsi_weights_writer_add_string(imsi_weights_writer *wr, const char *key, const char *value,
                                          ims_error *err)
{
    size_t len, mark;
    ims_status st = check_string(key, value, &len, err);
    if (!st)
        st = begin_entry(wr, key, IMS_META_STRING, &mark, err);
    return st ? st : end_entry(wr, key, bytes_str(&wr->metadata, value, len), mark, err);
}

static ims_status add_array(imsi_weights_writer *wr, const char *key, ims_meta_type type, const void *values,
                            size_t count, ims_error *err)
{
    size_t mark;
    ims_status st = begin_entry(wr, key, type, &mark, err);
    if (st)
        return st;
    int ok = bytes_u64(&wr->metadata, count);
    for (size_t i = 0; ok && i < count; i++) {
        uint64_t bits;
        memcpy(&bits, (const unsigned char *)values + 8 * i, 8);
        ok = bytes_u64(&wr->metadata, bits);
    }
    return end_entry(wr, key, ok, mark, err);
}

ims_status imsi_weights_writer_add_i64_array(imsi_weights_writer *wr, const char *key, const int64_t *values,
                                             size_t count, ims_error *err)
{
    return add_array(wr, key, IMS_META_I64_ARRAY, values, count, err);
}

ims_status imsi_weights_writer_add_f64_array(imsi_weights_writer *wr, const char *key, const double *values,
                                             size_t count, ims_error *err)
{
    return add_array(wr, key, IMS_META_F64_ARRAY, values, count, err);
}

ims_status imsi_weights_writer_add_string_array(imsi_weights_writer *wr, const char *key,
                                                const char *const *values, size_t count, ims_error *err)
{
    size_t len, mark;
    for (size_t i = 0; i < count; i++) {
        ims_status st = check_string(key, values[i], &len, err);
        if (st)
            return imsi_error_prefix(err, st, "element %zu", i);
    }
    ims_status st = begin_entry(wr, key, IMS_META_STRING_ARRAY, &mark, err);
    if (st)
        return st;
    int ok = bytes_u64(&wr->metadata, count);
    for (size_t i = 0; ok && i < count; i++)
        ok = bytes_str(&wr->metadata, values[i], strlen(values[i]));
    return end_entry(wr, key, ok, mark, err);
}

ims_status imsi_weights_writer_add_tensor(imsi_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                          const int64_t *shape, const void *data, ims_error *err)
{
    size_t len = strlen(name);
    if (imsi_isw_check_name(name, len, ISW_NAME_MAX, "tensor name", err))
        return as_argument_error(err);
    size_t es = ims_dtype_size(dtype);
    if (es == 0 || (unsigned)dtype >= ISW_DTYPE_COUNT)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "tensor '%s': dtype %d is not a weight-file dtype", name, (int)dtype);
    if (ndim < 0 || ndim > IMS_MAX_DIMS)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "tensor '%s': ndim %d outside 0..%d", name, ndim, IMS_MAX_DIMS);
    if (!data)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "tensor '%s': no data", name);
    pending_tensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    uint64_t numel = 1;
    for (int d = 0; d < IMS_MAX_DIMS; d++) {
        int64_t dim = d < ndim ? shape[d] : 1;
        if (dim < 1 || (uint64_t)dim > ISW_DIM_MAX || numel > UINT64_MAX / es / (uint64_t)dim)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "tensor '%s': shape[%d] = %lld is out of range", name, d,
                                 (long long)dim);
        numel *= (uint64_t)dim;
        t.shape[d] = dim;
    }
    t.nbytes = numel * es;
    for (size_t i = 0; i < wr->tensor_count; i++)
        if (strcmp(wr->tensors[i].name, name) == 0)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "duplicate tensor name '%s'", name);
    if (wr->tensor_count == wr->tensor_cap) {
        size_t cap = wr->tensor_cap ? 2 * wr->tensor_cap : 64;
        pending_tensor *p = realloc(wr->tensors, cap * sizeof *p);
        if (!p)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        wr->tensors = p;
        wr->tensor_cap = cap;
    }
    if (!(t.name = strdup(name)))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    wr->tensors[wr->tensor_count++] = t;
    return IMS_OK;
}

ims_status imsi_weights_writer_add_tensor_owned(imsi_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                                const int64_t *shape, void *data, ims_error *err)
{
    ims_status st = imsi_weights_writer_add_tensor(wr, name, dtype, ndim, shape, data, err);
    if (st) {
        free(data);
        return st;
    }
    wr->tensors[wr->tensor_count - 1].owned = data;
    return IMS_OK;
}

/* ---- Layout and output ------------------------------------------------------------ */

typedef ims_status (*sink_fn)(void *ctx, const void *data, uint64_t n, ims_error *err);

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* Encodes the directory (data offsets laid out in add order) and the header. */
static ims_status layout(const imsi_weights_writer *wr, bytes *dir, unsigned char header[ISW_HEADER_SIZE],
                         uint64_t *offsets, ims_error *err)
{
    uint64_t a = wr->alignment, data_size = 0;
    for (size_t i = 0; i < wr->tensor_count; i++) {
        const pending_tensor *t = &wr->tensors[i];
        offsets[i] = align_up(data_size, a);
        data_size = offsets[i] + t->nbytes;
        size_t len = strlen(t->name);
        int ok = bytes_str(dir, t->name, len) && bytes_u32(dir, (uint32_t)t->dtype) &&
                 bytes_u32(dir, (uint32_t)t->ndim);
        for (int d = 0; ok && d < t->ndim; d++)
            ok = bytes_u64(dir, (uint64_t)t->shape[d]);
        ok = ok && bytes_u64(dir, offsets[i]) && bytes_u64(dir, t->nbytes) &&
             bytes_u32(dir, imsi_isw_crc32(t->data, t->nbytes));
        if (!ok)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory encoding the tensor directory");
    }
    uint64_t meta_off = ISW_HEADER_SIZE, dir_off = meta_off + wr->metadata.len;
    uint64_t data_off = align_up(dir_off + dir->len, a);
    memset(header, 0, ISW_HEADER_SIZE);
    memcpy(header, ISW_MAGIC, ISW_MAGIC_LEN);
    isw_store_u32(header + ISW_OFF_VERSION, ISW_VERSION);
    isw_store_u32(header + ISW_OFF_BYTE_ORDER, ISW_BYTE_ORDER_MARK);
    isw_store_u32(header + ISW_OFF_HEADER_SIZE, ISW_HEADER_SIZE);
    isw_store_u32(header + ISW_OFF_ALIGNMENT, wr->alignment);
    isw_store_u64(header + ISW_OFF_FILE_SIZE, data_off + data_size);
    isw_store_u64(header + ISW_OFF_METADATA_COUNT, wr->metadata_count);
    isw_store_u64(header + ISW_OFF_METADATA_OFFSET, meta_off);
    isw_store_u64(header + ISW_OFF_METADATA_SIZE, wr->metadata.len);
    isw_store_u64(header + ISW_OFF_TENSOR_COUNT, wr->tensor_count);
    isw_store_u64(header + ISW_OFF_DIRECTORY_OFFSET, dir_off);
    isw_store_u64(header + ISW_OFF_DIRECTORY_SIZE, dir->len);
    isw_store_u64(header + ISW_OFF_DATA_OFFSET, data_off);
    isw_store_u64(header + ISW_OFF_DATA_SIZE, data_size);
    /* the index CRC runs over metadata then directory, which are contiguous */
    uint32_t crc = imsi_isw_crc32(wr->metadata.data, wr->metadata.len);
    crc = imsi_isw_crc32_update(crc, dir->data, dir->len);
    isw_store_u32(header + ISW_OFF_INDEX_CRC, crc);
    isw_store_u32(header + ISW_OFF_HEADER_CRC, imsi_isw_crc32(header, ISW_OFF_HEADER_CRC));
    return IMS_OK;
}

static ims_status emit(const imsi_weights_writer *wr, sink_fn sink, void *ctx, ims_error *err)
{
    static const unsigned char zeros[ISW_ALIGNMENT_MAX];
    bytes dir = {0};
    unsigned char header[ISW_HEADER_SIZE];
    uint64_t *offsets = calloc(wr->tensor_count ? wr->tensor_count : 1, sizeof *offsets);
    ims_status st = offsets ? layout(wr, &dir, header, offsets, err)
                            : ims_error_set(err, IMS_ERR_NOMEM, "out of memory laying out tensors");
    uint64_t pos = 0;
    if (!st)
        st = sink(ctx, header, ISW_HEADER_SIZE, err);
    if (!st)
        st = sink(ctx, wr->metadata.data, wr->metadata.len, err);
    if (!st)
        st = sink(ctx, dir.data, dir.len, err);
    if (!st) {
        pos = ISW_HEADER_SIZE + wr->metadata.len + dir.len;
        uint64_t pad = align_up(pos, wr->alignment) - pos;
        st = sink(ctx, zeros, pad, err);
    }
    for (size_t i = 0; i < wr->tensor_count && !st; i++) {
        /* data offsets are relative to the data section, which starts aligned */
        uint64_t gap = i == 0 ? 0 : offsets[i] - (offsets[i - 1] + wr->tensors[i - 1].nbytes);
        st = sink(ctx, zeros, gap, err);
        if (!st)
            st = sink(ctx, wr->tensors[i].data, wr->tensors[i].nbytes, err);
    }
    free(offsets);
    free(dir.data);
    return st;
}

static ims_status sink_memory(void *ctx, const void *data, uint64_t n, ims_error *err)
{
    if (n > SIZE_MAX || !bytes_put(ctx, data, (size_t)n))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory writing the weight file");
    return IMS_OK;
}

ims_status imsi_weights_writer_write_memory(const imsi_weights_writer *wr, unsigned char **out, size_t *size,
                                            ims_error *err)
{
    bytes b = {0};
    ims_status st = emit(wr, sink_memory, &b, err);
    if (st) {
        free(b.data);
        return st;
    }
    *out = b.data;
    *size = b.len;
    return IMS_OK;
}

/* The sink for a file: the atomic file's own writer (pieces, named errors). */
static ims_status sink_file(void *ctx, const void *data, uint64_t n, ims_error *err)
{
    if (n > SIZE_MAX)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "write of %llu bytes", (unsigned long long)n);
    return imsi_atomic_file_write(ctx, data, (size_t)n, err);
}

ims_status imsi_weights_writer_write_file(const imsi_weights_writer *wr, const char *path, ims_error *err)
{
    imsi_atomic_file af;
    ims_status st = imsi_atomic_file_open(&af, path, err);
    if (st)
        return st;
    st = emit(wr, sink_file, &af, err);
    if (st) {
        imsi_atomic_file_abort(&af);
        return st;
    }
    return imsi_atomic_file_commit(&af, err);
}

ims_status imsi_weights_writer_add_floats(imsi_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                          const int64_t *shape, float *values, ims_error *err)
{
    if (dtype == IMS_DTYPE_F32)
        return imsi_weights_writer_add_tensor_owned(wr, name, dtype, ndim, shape, values, err);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    uint16_t *half = malloc((size_t)n * sizeof *half);
    if (!half) {
        free(values);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory converting '%s' to f16", name);
    }
    for (int64_t i = 0; i < n; i++)
        half[i] = ims_f32_to_f16(values[i]);
    free(values);
    return imsi_weights_writer_add_tensor_owned(wr, name, IMS_DTYPE_F16, ndim, shape, half, err);
}
