/* weights_reader.c: maps a weight file (.isw) and validates all of it before use.
 *
 * Order of checks: the fixed header (magic, byte order, version, header size and
 * CRC, reserved bytes, alignment, file size, section layout), the index CRC, then
 * every metadata entry and tensor entry through a bounds-checked cursor, then
 * duplicate names, tensor overlap and (on request) tensor CRCs. Nothing is read
 * before its bounds are checked; every size product is overflow-checked. The
 * first failure ends the open with a message naming the field and its value.
 */
#include "core/file_map.h"
#include "io/weights_format.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A name with the index of its entry, sorted for lookups and duplicate checks. */
typedef struct name_index {
    ims_str name;
    size_t index;
} name_index;

struct ims_weights {
    const unsigned char *base;
    size_t size;
    imsi_file_map map; /* the file, when opened by path */
    char *path;        /* its absolute path (as given if realpath fails); NULL when opened from memory */
    ims_weights_header header;
    ims_meta *meta;
    size_t meta_count;
    name_index *meta_sorted;
    ims_weight_tensor *tensors;
    size_t tensor_count;
    name_index *tensor_sorted;
};

typedef struct cursor {
    const unsigned char *p;
    uint64_t left;
} cursor;

static int cursor_take(cursor *c, uint64_t n, const unsigned char **out)
{
    if (n > c->left)
        return 0;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 1;
}

static int cursor_u32(cursor *c, uint32_t *v)
{
    const unsigned char *p;
    if (!cursor_take(c, 4, &p))
        return 0;
    *v = isw_load_u32(p);
    return 1;
}

static int cursor_u64(cursor *c, uint64_t *v)
{
    const unsigned char *p;
    if (!cursor_take(c, 8, &p))
        return 0;
    *v = isw_load_u64(p);
    return 1;
}

static int name_cmp(const ims_str *a, const ims_str *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->ptr, b->ptr, n);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

static int name_index_cmp(const void *a, const void *b)
{
    return name_cmp(&((const name_index *)a)->name, &((const name_index *)b)->name);
}

/* Sorts names; fails on the first duplicate, naming `what`. */
static ims_status sort_unique(name_index *names, size_t count, const char *what, ims_error *err)
{
    qsort(names, count, sizeof *names, name_index_cmp);
    for (size_t i = 1; i < count; i++)
        if (name_cmp(&names[i - 1].name, &names[i].name) == 0) {
            size_t a = names[i - 1].index, b = names[i].index;
            return ims_error_set(err, IMS_ERR_FORMAT, "duplicate %s '%.*s' (entries %zu and %zu)", what,
                                 (int)names[i].name.len, names[i].name.ptr, a < b ? a : b, a < b ? b : a);
        }
    return IMS_OK;
}

static const name_index *find_name(const name_index *names, size_t count, const char *key)
{
    ims_str want = {key, strlen(key)};
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(&names[mid].name, &want);
        if (c == 0)
            return &names[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- Header ----------------------------------------------------------------- */

static ims_status parse_header(const unsigned char *b, size_t size, ims_weights_header *h, ims_error *err)
{
    if (size < ISW_HEADER_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT, "file is %zu bytes, shorter than the %u-byte header", size,
                             ISW_HEADER_SIZE);
    if (memcmp(b, ISW_MAGIC, ISW_MAGIC_LEN) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "magic is %02x %02x %02x %02x %02x %02x %02x %02x, not an imgsearch weight file "
                             "(89 49 53 57 0d 0a 1a 0a)",
                             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
    uint32_t bom = isw_load_u32(b + ISW_OFF_BYTE_ORDER);
    if (bom != ISW_BYTE_ORDER_MARK)
        return ims_error_set(err, IMS_ERR_FORMAT, "byte_order is 0x%08x, expected 0x%08x (little-endian)", bom,
                             ISW_BYTE_ORDER_MARK);
    h->version = isw_load_u32(b + ISW_OFF_VERSION);
    if (h->version != ISW_VERSION)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "version is %u; this reader reads version %u",
                             h->version, ISW_VERSION);
    uint32_t header_size = isw_load_u32(b + ISW_OFF_HEADER_SIZE);
    if (header_size != ISW_HEADER_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT, "header_size is %u, expected %u", header_size, ISW_HEADER_SIZE);
    uint32_t stored = isw_load_u32(b + ISW_OFF_HEADER_CRC), actual = imsi_isw_crc32(b, ISW_OFF_HEADER_CRC);
    if (stored != actual)
        return ims_error_set(err, IMS_ERR_CHECKSUM, "header_crc32 is 0x%08x but the header's crc32 is 0x%08x",
                             stored, actual);
    uint32_t flags = isw_load_u32(b + ISW_OFF_FLAGS);
    if (flags != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "flags is 0x%08x, must be 0 in version 1", flags);
    for (unsigned i = ISW_OFF_RESERVED; i < ISW_OFF_HEADER_CRC; i++)
        if (b[i] != 0)
            return ims_error_set(err, IMS_ERR_FORMAT, "reserved header byte %u is 0x%02x, must be 0", i, b[i]);

    h->alignment = isw_load_u32(b + ISW_OFF_ALIGNMENT);
    h->file_size = isw_load_u64(b + ISW_OFF_FILE_SIZE);
    h->metadata_count = isw_load_u64(b + ISW_OFF_METADATA_COUNT);
    h->metadata_offset = isw_load_u64(b + ISW_OFF_METADATA_OFFSET);
    h->metadata_size = isw_load_u64(b + ISW_OFF_METADATA_SIZE);
    h->tensor_count = isw_load_u64(b + ISW_OFF_TENSOR_COUNT);
    h->directory_offset = isw_load_u64(b + ISW_OFF_DIRECTORY_OFFSET);
    h->directory_size = isw_load_u64(b + ISW_OFF_DIRECTORY_SIZE);
    h->data_offset = isw_load_u64(b + ISW_OFF_DATA_OFFSET);
    h->data_size = isw_load_u64(b + ISW_OFF_DATA_SIZE);
    h->index_crc32 = isw_load_u32(b + ISW_OFF_INDEX_CRC);

    uint32_t a = h->alignment;
    if (a < ISW_ALIGNMENT_MIN || a > ISW_ALIGNMENT_MAX || (a & (a - 1)) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "alignment is %u, must be a power of two in %u..%u", a,
                             ISW_ALIGNMENT_MIN, ISW_ALIGNMENT_MAX);
    if (h->file_size != size)
        return ims_error_set(err, IMS_ERR_FORMAT, "file_size is %llu but the file has %zu bytes%s",
                             (unsigned long long)h->file_size, size,
                             h->file_size > size ? " (truncated?)" : "");
    if (h->metadata_offset != ISW_HEADER_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT, "metadata_offset is %llu, must be %u (right after the header)",
                             (unsigned long long)h->metadata_offset, ISW_HEADER_SIZE);
    if (h->metadata_size > size - h->metadata_offset)
        return ims_error_set(err, IMS_ERR_FORMAT, "metadata_size %llu runs past the end of the file (%zu bytes)",
                             (unsigned long long)h->metadata_size, size);
    uint64_t meta_end = h->metadata_offset + h->metadata_size;
    if (h->directory_offset != meta_end)
        return ims_error_set(err, IMS_ERR_FORMAT, "directory_offset is %llu, must be %llu (right after the metadata)",
                             (unsigned long long)h->directory_offset, (unsigned long long)meta_end);
    if (h->directory_size > size - h->directory_offset)
        return ims_error_set(err, IMS_ERR_FORMAT, "directory_size %llu runs past the end of the file (%zu bytes)",
                             (unsigned long long)h->directory_size, size);
    uint64_t dir_end = h->directory_offset + h->directory_size;
    uint64_t data_start = (dir_end + a - 1) & ~(uint64_t)(a - 1); /* dir_end < 2^63: no overflow */
    if (h->data_offset != data_start)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "data_offset is %llu, must be %llu (the directory's end rounded up to the alignment)",
                             (unsigned long long)h->data_offset, (unsigned long long)data_start);
    if (h->data_offset > size)
        return ims_error_set(err, IMS_ERR_FORMAT, "data_offset %llu is past the end of the file (%zu bytes)",
                             (unsigned long long)h->data_offset, size);
    if (h->data_size != size - h->data_offset)
        return ims_error_set(err, IMS_ERR_FORMAT, "data_size is %llu, must be %llu (file_size - data_offset)",
                             (unsigned long long)h->data_size, (unsigned long long)(size - h->data_offset));
    for (uint64_t i = dir_end; i < h->data_offset; i++)
        if (b[i] != 0)
            return ims_error_set(err, IMS_ERR_FORMAT, "padding byte at offset %llu is 0x%02x, must be 0",
                                 (unsigned long long)i, b[i]);
    if (h->metadata_count > h->metadata_size / ISW_META_ENTRY_MIN)
        return ims_error_set(err, IMS_ERR_FORMAT, "metadata_count %llu cannot fit in metadata_size %llu",
                             (unsigned long long)h->metadata_count, (unsigned long long)h->metadata_size);
    if (h->tensor_count > h->directory_size / ISW_TENSOR_ENTRY_MIN)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor_count %llu cannot fit in directory_size %llu",
                             (unsigned long long)h->tensor_count, (unsigned long long)h->directory_size);
    uint32_t index_crc = imsi_isw_crc32(b + h->metadata_offset, h->metadata_size + h->directory_size);
    if (index_crc != h->index_crc32)
        return ims_error_set(err, IMS_ERR_CHECKSUM,
                             "index_crc32 is 0x%08x but the metadata and directory's crc32 is 0x%08x",
                             h->index_crc32, index_crc);
    return IMS_OK;
}

/* ---- Metadata ----------------------------------------------------------------- */

static ims_status parse_string(cursor *c, ims_str *out, const char *what, uint64_t i, ims_error *err)
{
    uint32_t len;
    const unsigned char *p;
    if (!cursor_u32(c, &len) || !cursor_take(c, len, &p))
        return ims_error_set(err, IMS_ERR_FORMAT, "%s %llu: length runs past the metadata section", what,
                             (unsigned long long)i);
    if (len > ISW_STRING_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s %llu: length %u exceeds %u", what, (unsigned long long)i,
                             len, ISW_STRING_MAX);
    if (!imsi_isw_utf8_valid((const char *)p, len))
        return ims_error_set(err, IMS_ERR_FORMAT, "%s %llu is not valid UTF-8 or contains a NUL byte", what,
                             (unsigned long long)i);
    out->ptr = (const char *)p;
    out->len = len;
    return IMS_OK;
}

static ims_status parse_meta_value(cursor *c, ims_meta *m, ims_error *err)
{
    const unsigned char *p;
    switch (m->type) {
    case IMS_META_I64:
    case IMS_META_F64:
        m->count = 1;
        if (!cursor_take(c, 8, &p))
            return ims_error_set(err, IMS_ERR_FORMAT, "value runs past the metadata section");
        m->values = p;
        return IMS_OK;
    case IMS_META_I64_ARRAY:
    case IMS_META_F64_ARRAY:
        if (!cursor_u64(c, &m->count))
            return ims_error_set(err, IMS_ERR_FORMAT, "array count runs past the metadata section");
        if (m->count > c->left / 8 || !cursor_take(c, m->count * 8, &p))
            return ims_error_set(err, IMS_ERR_FORMAT, "array count %llu runs past the metadata section",
                                 (unsigned long long)m->count);
        m->values = p;
        return IMS_OK;
    case IMS_META_STRING:
    case IMS_META_STRING_ARRAY: {
        if (m->type == IMS_META_STRING)
            m->count = 1;
        else if (!cursor_u64(c, &m->count))
            return ims_error_set(err, IMS_ERR_FORMAT, "array count runs past the metadata section");
        /* each string takes at least its 4-byte length: bound the allocation */
        if (m->count > c->left / 4)
            return ims_error_set(err, IMS_ERR_FORMAT, "string count %llu runs past the metadata section",
                                 (unsigned long long)m->count);
        ims_str *strings = calloc(m->count ? m->count : 1, sizeof *strings);
        if (!strings)
            return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %llu strings", (unsigned long long)m->count);
        m->strings = strings;
        for (uint64_t i = 0; i < m->count; i++) {
            ims_status st = parse_string(c, &strings[i], "string", i, err);
            if (st)
                return st;
        }
        return IMS_OK;
    }
    }
    return ims_error_set(err, IMS_ERR_FORMAT, "type is %u, not a known metadata type (1..6)", (unsigned)m->type);
}

static ims_status parse_metadata(ims_weights *w, ims_error *err)
{
    const ims_weights_header *h = &w->header;
    cursor c = {w->base + h->metadata_offset, h->metadata_size};
    size_t n = (size_t)h->metadata_count; /* bounded by metadata_size / 17 */
    w->meta = calloc(n ? n : 1, sizeof *w->meta);
    w->meta_sorted = calloc(n ? n : 1, sizeof *w->meta_sorted);
    if (!w->meta || !w->meta_sorted)
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu metadata entries", n);
    for (size_t i = 0; i < n; i++) {
        ims_meta *m = &w->meta[i];
        w->meta_count = i + 1; /* so close() frees what this entry allocates */
        uint32_t key_len, type;
        const unsigned char *key;
        if (!cursor_u32(&c, &key_len) || !cursor_take(&c, key_len, &key))
            return ims_error_set(err, IMS_ERR_FORMAT, "metadata entry %zu: key runs past the metadata section", i);
        ims_status st = imsi_isw_check_name((const char *)key, key_len, ISW_KEY_MAX, "key", err);
        if (st)
            return imsi_error_prefix(err, st, "metadata entry %zu", i);
        m->key.ptr = (const char *)key;
        m->key.len = key_len;
        if (!cursor_u32(&c, &type))
            return ims_error_set(err, IMS_ERR_FORMAT, "metadata entry %zu ('%.*s'): type runs past the metadata section",
                                 i, (int)key_len, key);
        m->type = (ims_meta_type)type;
        st = parse_meta_value(&c, m, err);
        if (st)
            return imsi_error_prefix(err, st, "metadata entry %zu ('%.*s')", i, (int)key_len, key);
        w->meta_sorted[i].name = m->key;
        w->meta_sorted[i].index = i;
    }
    if (c.left != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "%llu bytes left in the metadata section after metadata_count = %zu entries",
                             (unsigned long long)c.left, n);
    return sort_unique(w->meta_sorted, n, "metadata key", err);
}

/* ---- Tensor directory ------------------------------------------------------------ */

static ims_status parse_tensor(cursor *c, const ims_weights_header *h, ims_weight_tensor *t, ims_error *err)
{
    uint32_t dtype, ndim;
    if (!cursor_u32(c, &dtype) || !cursor_u32(c, &ndim))
        return ims_error_set(err, IMS_ERR_FORMAT, "dtype/ndim run past the directory");
    size_t es = ims_dtype_size((ims_dtype)dtype);
    if (dtype >= ISW_DTYPE_COUNT || es == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "dtype is %u, not a known dtype (0..%u)", dtype, ISW_DTYPE_COUNT - 1);
    if (ndim > IMS_MAX_DIMS)
        return ims_error_set(err, IMS_ERR_FORMAT, "ndim is %u, at most %d", ndim, IMS_MAX_DIMS);
    t->dtype = (ims_dtype)dtype;
    t->ndim = (int)ndim;
    uint64_t numel = 1;
    for (int d = 0; d < IMS_MAX_DIMS; d++) {
        uint64_t dim = 1;
        if (d < t->ndim && !cursor_u64(c, &dim))
            return ims_error_set(err, IMS_ERR_FORMAT, "shape runs past the directory");
        if (dim < 1 || dim > ISW_DIM_MAX)
            return ims_error_set(err, IMS_ERR_FORMAT, "shape[%d] is %llu, must be in 1..2^40", d,
                                 (unsigned long long)dim);
        if (numel > UINT64_MAX / es / dim)
            return ims_error_set(err, IMS_ERR_FORMAT, "shape product overflows at shape[%d] = %llu", d,
                                 (unsigned long long)dim);
        numel *= dim;
        t->shape[d] = (int64_t)dim;
    }
    if (!cursor_u64(c, &t->offset) || !cursor_u64(c, &t->nbytes) || !cursor_u32(c, &t->crc32))
        return ims_error_set(err, IMS_ERR_FORMAT, "offset/nbytes/crc32 run past the directory");
    if (t->nbytes != numel * es)
        return ims_error_set(err, IMS_ERR_FORMAT, "nbytes is %llu, but %llu elements of %s take %llu",
                             (unsigned long long)t->nbytes, (unsigned long long)numel, ims_dtype_name(t->dtype),
                             (unsigned long long)(numel * es));
    if (t->offset % h->alignment != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "offset %llu is not a multiple of the alignment %u",
                             (unsigned long long)t->offset, h->alignment);
    if (t->offset > h->data_size || t->nbytes > h->data_size - t->offset)
        return ims_error_set(err, IMS_ERR_FORMAT, "bytes %llu..%llu run past the data section (%llu bytes)",
                             (unsigned long long)t->offset, (unsigned long long)t->offset + t->nbytes,
                             (unsigned long long)h->data_size);
    return IMS_OK;
}

typedef struct extent {
    uint64_t begin, end;
    size_t index;
} extent;

static int extent_cmp(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static ims_status check_no_overlap(const ims_weights *w, ims_error *err)
{
    size_t n = w->tensor_count;
    if (n < 2)
        return IMS_OK;
    extent *e = malloc(n * sizeof *e);
    if (!e)
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu extents", n);
    for (size_t i = 0; i < n; i++)
        e[i] = (extent){w->tensors[i].offset, w->tensors[i].offset + w->tensors[i].nbytes, i};
    qsort(e, n, sizeof *e, extent_cmp);
    ims_status st = IMS_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (e[i].begin < e[i - 1].end) {
            const ims_weight_tensor *a = &w->tensors[e[i - 1].index], *b = &w->tensors[e[i].index];
            st = ims_error_set(err, IMS_ERR_FORMAT, "tensors '%.*s' and '%.*s' overlap in the data section",
                               (int)a->name.len, a->name.ptr, (int)b->name.len, b->name.ptr);
        }
    free(e);
    return st;
}

static ims_status parse_directory(ims_weights *w, ims_error *err)
{
    const ims_weights_header *h = &w->header;
    cursor c = {w->base + h->directory_offset, h->directory_size};
    size_t n = (size_t)h->tensor_count; /* bounded by directory_size / 33 */
    w->tensors = calloc(n ? n : 1, sizeof *w->tensors);
    w->tensor_sorted = calloc(n ? n : 1, sizeof *w->tensor_sorted);
    if (!w->tensors || !w->tensor_sorted)
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu tensor entries", n);
    for (size_t i = 0; i < n; i++) {
        ims_weight_tensor *t = &w->tensors[i];
        uint32_t name_len;
        const unsigned char *name;
        if (!cursor_u32(&c, &name_len) || !cursor_take(&c, name_len, &name))
            return ims_error_set(err, IMS_ERR_FORMAT, "tensor %zu: name runs past the directory", i);
        ims_status st = imsi_isw_check_name((const char *)name, name_len, ISW_NAME_MAX, "name", err);
        if (st)
            return imsi_error_prefix(err, st, "tensor %zu", i);
        t->name.ptr = (const char *)name;
        t->name.len = name_len;
        st = parse_tensor(&c, h, t, err);
        if (st)
            return imsi_error_prefix(err, st, "tensor %zu ('%.*s')", i, (int)name_len, name);
        t->data = w->base + h->data_offset + t->offset;
        w->tensor_sorted[i].name = t->name;
        w->tensor_sorted[i].index = i;
    }
    w->tensor_count = n;
    if (c.left != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "%llu bytes left in the directory after tensor_count = %zu entries",
                             (unsigned long long)c.left, n);
    ims_status st = sort_unique(w->tensor_sorted, n, "tensor name", err);
    return st ? st : check_no_overlap(w, err);
}

/* ---- Open and close ------------------------------------------------------------- */

ims_status ims_weights_verify_data(const ims_weights *w, ims_error *err)
{
    for (size_t i = 0; i < w->tensor_count; i++) {
        const ims_weight_tensor *t = &w->tensors[i];
        uint32_t crc = imsi_isw_crc32(t->data, t->nbytes);
        if (crc != t->crc32)
            return ims_error_set(err, IMS_ERR_CHECKSUM, "tensor %zu ('%.*s'): crc32 is 0x%08x but its data's is 0x%08x",
                                 i, (int)t->name.len, t->name.ptr, t->crc32, crc);
    }
    return IMS_OK;
}

static ims_status weights_parse(ims_weights *w, unsigned flags, ims_error *err)
{
    ims_status st = parse_header(w->base, w->size, &w->header, err);
    if (!st)
        st = parse_metadata(w, err);
    if (!st)
        st = parse_directory(w, err);
    if (!st && (flags & IMS_WEIGHTS_VERIFY_DATA))
        st = ims_weights_verify_data(w, err);
    return st;
}

void ims_weights_close(ims_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->meta_count; i++)
        free((void *)w->meta[i].strings);
    free(w->meta);
    free(w->meta_sorted);
    free(w->tensors);
    free(w->tensor_sorted);
    imsi_file_map_close(&w->map);
    free(w->path);
    free(w);
}

ims_status ims_weights_open_memory(const void *buf, size_t size, unsigned flags, ims_weights **out,
                                   ims_error *err)
{
    *out = NULL;
    ims_weights *w = calloc(1, sizeof *w);
    if (!w)
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate a weights handle");
    w->base = buf;
    w->size = size;
    ims_status st = weights_parse(w, flags, err);
    if (!st && (uintptr_t)buf % w->header.alignment != 0)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "buffer address %p is not a multiple of the file's alignment %u",
                           buf, w->header.alignment);
    if (st) {
        ims_weights_close(w);
        return st;
    }
    *out = w;
    return IMS_OK;
}

ims_status ims_weights_open(const char *path, unsigned flags, ims_weights **out, ims_error *err)
{
    *out = NULL;
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (st)
        return imsi_error_prefix(err, st, "weights file '%s'", path);
    if (map.size < ISW_HEADER_SIZE) {
        imsi_file_map_close(&map);
        return ims_error_set(err, IMS_ERR_FORMAT, "weights file '%s': file is %zu bytes, shorter than the %u-byte header",
                             path, map.size, ISW_HEADER_SIZE);
    }
    ims_weights *w = calloc(1, sizeof *w);
    if (!w) {
        imsi_file_map_close(&map);
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate a weights handle");
    }
    w->base = map.data;
    w->size = map.size;
    w->map = map;
    w->path = realpath(path, NULL);
    if (!w->path)
        w->path = strdup(path);
    st = w->path ? weights_parse(w, flags, err) : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (st) {
        ims_weights_close(w);
        return imsi_error_prefix(err, st, "weights file '%s'", path);
    }
    *out = w;
    return IMS_OK;
}

/* ---- Queries ---------------------------------------------------------------------- */

ims_status ims_weights_identify(const ims_weights *w, ims_weights_identity *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    if (w->path) {
        const char *slash = strrchr(w->path, '/');
        if (strlen(w->path) >= sizeof out->path)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "weights file path is longer than %zu bytes",
                                 sizeof out->path - 1);
        const char *name = slash ? slash + 1 : w->path;
        size_t n = strlen(name) < sizeof out->name ? strlen(name) : sizeof out->name - 1;
        memcpy(out->name, name, n);
        memcpy(out->path, w->path, strlen(w->path));
    }
    int64_t synthetic = 0;
    out->synthetic = ims_weights_get_i64(w, "synthetic", &synthetic, NULL) == IMS_OK && synthetic != 0;
    out->bytes = w->size;
    out->crc32 = imsi_isw_crc32(w->base, w->size);
    return IMS_OK;
}

const ims_weights_header *ims_weights_get_header(const ims_weights *w) { return &w->header; }
size_t ims_weights_meta_count(const ims_weights *w) { return w->meta_count; }
size_t ims_weights_tensor_count(const ims_weights *w) { return w->tensor_count; }

const ims_meta *ims_weights_meta_at(const ims_weights *w, size_t index)
{
    return index < w->meta_count ? &w->meta[index] : NULL;
}

const ims_weight_tensor *ims_weights_tensor_at(const ims_weights *w, size_t index)
{
    return index < w->tensor_count ? &w->tensors[index] : NULL;
}

const ims_meta *ims_weights_meta_find(const ims_weights *w, const char *key)
{
    const name_index *e = find_name(w->meta_sorted, w->meta_count, key);
    return e ? &w->meta[e->index] : NULL;
}

const ims_weight_tensor *ims_weights_tensor_find(const ims_weights *w, const char *name)
{
    const name_index *e = find_name(w->tensor_sorted, w->tensor_count, name);
    return e ? &w->tensors[e->index] : NULL;
}

const char *ims_meta_type_name(ims_meta_type type)
{
    switch (type) {
    case IMS_META_I64: return "i64";
    case IMS_META_F64: return "f64";
    case IMS_META_STRING: return "string";
    case IMS_META_I64_ARRAY: return "i64[]";
    case IMS_META_F64_ARRAY: return "f64[]";
    case IMS_META_STRING_ARRAY: return "string[]";
    }
    return "?";
}

int64_t ims_meta_i64_at(const ims_meta *m, size_t i)
{
    return (int64_t)isw_load_u64((const unsigned char *)m->values + 8 * i);
}

double ims_meta_f64_at(const ims_meta *m, size_t i)
{
    uint64_t bits = isw_load_u64((const unsigned char *)m->values + 8 * i);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static ims_status meta_typed(const ims_weights *w, const char *key, ims_meta_type type, const ims_meta **out,
                             ims_error *err)
{
    const ims_meta *m = ims_weights_meta_find(w, key);
    if (!m)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "metadata key '%s' is missing", key);
    if (m->type != type)
        return ims_error_set(err, IMS_ERR_FORMAT, "metadata key '%s' is %s, expected %s", key,
                             ims_meta_type_name(m->type), ims_meta_type_name(type));
    *out = m;
    return IMS_OK;
}

ims_status ims_weights_get_i64(const ims_weights *w, const char *key, int64_t *out, ims_error *err)
{
    const ims_meta *m = NULL;
    ims_status st = meta_typed(w, key, IMS_META_I64, &m, err);
    if (!st)
        *out = ims_meta_i64_at(m, 0);
    return st;
}

ims_status ims_weights_get_f64(const ims_weights *w, const char *key, double *out, ims_error *err)
{
    const ims_meta *m = NULL;
    ims_status st = meta_typed(w, key, IMS_META_F64, &m, err);
    if (!st)
        *out = ims_meta_f64_at(m, 0);
    return st;
}

ims_status ims_weights_get_string(const ims_weights *w, const char *key, ims_str *out, ims_error *err)
{
    const ims_meta *m = NULL;
    ims_status st = meta_typed(w, key, IMS_META_STRING, &m, err);
    if (!st)
        *out = m->strings[0];
    return st;
}

ims_status ims_weights_get_strings(const ims_weights *w, const char *key, const ims_str **out, size_t *count,
                                   ims_error *err)
{
    const ims_meta *m = NULL;
    ims_status st = meta_typed(w, key, IMS_META_STRING_ARRAY, &m, err);
    if (!st) {
        *out = m->strings;
        *count = (size_t)m->count;
    }
    return st;
}

static ims_status get_array(const ims_weights *w, const char *key, ims_meta_type type, void *out, size_t count,
                            ims_error *err)
{
    const ims_meta *m = NULL;
    ims_status st = meta_typed(w, key, type, &m, err);
    if (st)
        return st;
    if (m->count != count)
        return ims_error_set(err, IMS_ERR_FORMAT, "metadata key '%s' has %llu elements, expected %zu", key,
                             (unsigned long long)m->count, count);
    for (size_t i = 0; i < count; i++) {
        uint64_t bits = isw_load_u64((const unsigned char *)m->values + 8 * i);
        memcpy((unsigned char *)out + 8 * i, &bits, 8);
    }
    return IMS_OK;
}

ims_status ims_weights_get_i64_array(const ims_weights *w, const char *key, int64_t *out, size_t count,
                                     ims_error *err)
{
    return get_array(w, key, IMS_META_I64_ARRAY, out, count, err);
}

ims_status ims_weights_get_f64_array(const ims_weights *w, const char *key, double *out, size_t count,
                                     ims_error *err)
{
    return get_array(w, key, IMS_META_F64_ARRAY, out, count, err);
}

ims_status ims_weights_tensor_expect(const ims_weights *w, const char *name, ims_dtype dtype, int ndim,
                                     const int64_t *shape, const ims_weight_tensor **out, ims_error *err)
{
    const ims_weight_tensor *t = ims_weights_tensor_find(w, name);
    if (!t)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "tensor '%s' is missing", name);
    int ok = t->dtype == dtype && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[96] = "", have[96] = "";
        for (int i = 0, n = 0; i < ndim; i++)
            n += snprintf(want + n, sizeof want - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
        for (int i = 0, n = 0; i < t->ndim; i++)
            n += snprintf(have + n, sizeof have - (size_t)n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s' is (%s) %s, expected (%s) %s", name, have,
                             ims_dtype_name(t->dtype), want, ims_dtype_name(dtype));
    }
    *out = t;
    return IMS_OK;
}
