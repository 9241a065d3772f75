/* safetensors.c: the safetensors reader (imsi_ckpt_read_safetensors, checkpoint.h).
 *
 * Layout (huggingface/safetensors, tensor.rs): u64 LE header length N; N bytes
 * of JSON; the data buffer, which runs to the end of the file. The header is an
 * object {name: {"dtype", "shape", "data_offsets": [begin, end]}} plus an
 * optional "__metadata__": {string: string}. Offsets are relative to the data
 * buffer; tensors are C-contiguous and little-endian.
 *
 * Validation is the upstream reader's plus a few refusals it does not make:
 * - N <= 100,000,000 and 8 + N <= file size; the header starts with '{' and is
 *   strict JSON (core/json.h: duplicate keys refused); trailing spaces (the
 *   writer pads the header to 8 bytes) are JSON whitespace.
 * - every tensor entry has exactly dtype, shape and data_offsets (missing or
 *   unknown fields are refused); "__metadata__" maps strings to strings.
 * - sorted by (begin, end), the tensors tile [0, last end) with no hole and no
 *   overlap, end - begin == numel * dtype size (overflow-checked), and
 *   8 + N + last end == file size.
 * - dtypes F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL; the others upstream knows
 *   (F8_*, U16, U32, U64, ...) are refused as unsupported, naming the dtype.
 * - at most CKPT_MAX_DIMS dims (upstream has no limit; no model here needs more).
 * - tensor names are 1..ISW_NAME_MAX bytes without control characters (the
 *   weight file's rule for names; upstream allows any string).
 *
 * Tensors are added in header order (the order of the JSON object), which for
 * files written by safetensors is also offset order. Strides are row-major;
 * for an empty tensor (a zero dim) they are all 0, since the row-major products
 * of the other dims could overflow and no element is ever read.
 */
#include "checkpoint.h"
#include "core/json.h"

#include "core/error.h"
#include "io/weights_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_HEADER_MAX 100000000u

typedef struct st_dtype_name {
    const char *name;
    int dtype; /* a ckpt_dtype, or -1: known to safetensors, not supported here */
} st_dtype_name;

static const st_dtype_name st_dtypes[] = {
    {"F64", CKPT_F64},   {"F32", CKPT_F32},   {"F16", CKPT_F16},         {"BF16", CKPT_BF16},
    {"I64", CKPT_I64},   {"I32", CKPT_I32},   {"I16", CKPT_I16},         {"I8", CKPT_I8},
    {"U8", CKPT_U8},     {"BOOL", CKPT_BOOL}, {"U16", -1},               {"U32", -1},
    {"U64", -1},         {"F8_E5M2", -1},     {"F8_E4M3", -1},           {"F8_E8M0", -1},
    {"F6_E2M3", -1},     {"F6_E3M2", -1},     {"F4", -1},                {"C64", -1},
};

/* One header entry, kept for the offset checks after every entry is parsed. */
typedef struct st_entry {
    const char *name;
    ckpt_dtype dtype;
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static ims_status parse_dtype(const char *name, const json_value *v, ckpt_dtype *out, ims_error *err)
{
    const char *s;
    ims_status st = imsi_json_get_string(v, "dtype", &s, NULL, err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%s'", name);
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++) {
        if (strcmp(s, st_dtypes[i].name) != 0)
            continue;
        if (st_dtypes[i].dtype < 0)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                                 "tensor '%s': dtype %s is not supported "
                                 "(supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
                                 name, s);
        *out = (ckpt_dtype)st_dtypes[i].dtype;
        return IMS_OK;
    }
    char shown[80];
    return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': unknown dtype '%s'", name,
                         imsi_json_printable(s, shown, sizeof shown));
}

static ims_status parse_shape(const char *name, const json_value *v, st_entry *e, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(v, JSON_ARRAY, "shape", err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%s'", name);
    if (v->arr.count > CKPT_MAX_DIMS)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "tensor '%s': shape has %zu dims, more than %d", name,
                             v->arr.count, CKPT_MAX_DIMS);
    e->ndim = (int)v->arr.count;
    for (int d = 0; d < e->ndim; d++) {
        char what[32];
        snprintf(what, sizeof what, "shape[%d]", d);
        st = imsi_json_get_int64(&v->arr.items[d], what, 0, INT64_MAX, &e->shape[d], err);
        if (st)
            return imsi_error_prefix(err, st, "tensor '%s'", name);
    }
    return IMS_OK;
}

static ims_status parse_offsets(const char *name, const json_value *v, st_entry *e, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(v, JSON_ARRAY, "data_offsets", err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%s'", name);
    if (v->arr.count != 2)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': data_offsets has %zu elements, expected 2 [begin, end]",
                             name, v->arr.count);
    int64_t b, en;
    st = imsi_json_get_int64(&v->arr.items[0], "data_offsets[0]", 0, INT64_MAX, &b, err);
    if (!st)
        st = imsi_json_get_int64(&v->arr.items[1], "data_offsets[1]", 0, INT64_MAX, &en, err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%s'", name);
    if (en < b)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': data_offsets [%lld, %lld] end before they begin", name,
                             (long long)b, (long long)en);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    return IMS_OK;
}

/* Checks end - begin == numel * dtype size, every product overflow-checked. */
static ims_status check_size(const st_entry *e, ims_error *err)
{
    uint64_t nbytes = imsi_ckpt_dtype_size(e->dtype);
    int overflow = 0;
    for (int d = 0; d < e->ndim; d++) {
        uint64_t dim = (uint64_t)e->shape[d];
        if (dim == 0) {
            nbytes = 0;
            overflow = 0; /* an empty tensor has no bytes, whatever the other dims */
            break;
        }
        if (nbytes > UINT64_MAX / dim)
            overflow = 1;
        else
            nbytes *= dim;
    }
    if (overflow)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': shape's byte size overflows 64 bits", e->name);
    if (e->end - e->begin != nbytes)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but dtype %s and its shape need %llu",
                             e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                             (unsigned long long)(e->end - e->begin), imsi_ckpt_dtype_name(e->dtype),
                             (unsigned long long)nbytes);
    return IMS_OK;
}

static ims_status parse_entry(const json_member *m, st_entry *e, ims_error *err)
{
    e->name = m->key;
    /* Names go into messages, the mappers' lookups and the .isw file, which
     * allows no control characters: refused here, where the name is read. */
    ims_status st = imsi_isw_check_name(m->key, m->key_len, ISW_NAME_MAX, "tensor name", err);
    if (st)
        return imsi_error_prefix(err, st, "header entry at JSON byte %zu", m->key_offset);
    st = imsi_json_expect_kind(&m->value, JSON_OBJECT, "entry", err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%s'", e->name);
    int seen_dtype = 0, seen_shape = 0, seen_offsets = 0;
    for (size_t i = 0; i < m->value.obj.count && !st; i++) {
        const json_member *f = &m->value.obj.members[i];
        if (strcmp(f->key, "dtype") == 0)
            seen_dtype = 1, st = parse_dtype(e->name, &f->value, &e->dtype, err);
        else if (strcmp(f->key, "shape") == 0)
            seen_shape = 1, st = parse_shape(e->name, &f->value, e, err);
        else if (strcmp(f->key, "data_offsets") == 0)
            seen_offsets = 1, st = parse_offsets(e->name, &f->value, e, err);
        else {
            char shown[80];
            return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': unknown field '%s' (JSON byte %zu)", e->name,
                                 imsi_json_printable(f->key, shown, sizeof shown), f->key_offset);
        }
    }
    if (st)
        return st;
    if (!seen_dtype || !seen_shape || !seen_offsets)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': missing field '%s'", e->name,
                             !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data_offsets");
    return check_size(e, err);
}

static ims_status check_metadata(const json_value *v, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(v, JSON_OBJECT, "__metadata__", err);
    for (size_t i = 0; i < v->obj.count && !st; i++) {
        char shown[80];
        if (v->obj.members[i].value.kind != JSON_STRING)
            st = ims_error_set(err, IMS_ERR_FORMAT, "__metadata__: value of '%s' is a %s, expected a string",
                               imsi_json_printable(v->obj.members[i].key, shown, sizeof shown),
                               imsi_json_kind_name(v->obj.members[i].value.kind));
    }
    return st;
}

static int entry_cmp(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sorted by offset, the tensors must tile the data buffer exactly. */
static ims_status check_tiling(st_entry *entries, size_t count, uint64_t data_size, ims_error *err)
{
    st_entry **sorted = malloc((count ? count : 1) * sizeof *sorted);
    if (!sorted)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++)
        sorted[i] = &entries[i];
    qsort(sorted, count, sizeof *sorted, entry_cmp);
    ims_status st = IMS_OK;
    uint64_t pos = 0;
    for (size_t i = 0; i < count && !st; i++) {
        const st_entry *e = sorted[i];
        if (e->begin > pos)
            st = ims_error_set(err, IMS_ERR_FORMAT,
                               "hole in the data buffer: bytes [%llu, %llu) before tensor '%s' belong to no tensor",
                               (unsigned long long)pos, (unsigned long long)e->begin, e->name);
        else if (e->begin < pos)
            st = ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s' [%llu, %llu) overlaps tensor '%s' [%llu, %llu)", e->name,
                               (unsigned long long)e->begin, (unsigned long long)e->end, sorted[i - 1]->name,
                               (unsigned long long)sorted[i - 1]->begin, (unsigned long long)sorted[i - 1]->end);
        else if (e->end > data_size)
            st = ims_error_set(err, IMS_ERR_FORMAT,
                               "tensor '%s': data_offsets end %llu is past the end of the %llu-byte data buffer", e->name,
                               (unsigned long long)e->end, (unsigned long long)data_size);
        pos = e->end;
    }
    free(sorted);
    if (!st && pos != data_size)
        st = ims_error_set(err, IMS_ERR_FORMAT, "the tensors end at data byte %llu, but the data buffer has %llu bytes",
                           (unsigned long long)pos, (unsigned long long)data_size);
    return st;
}

static ims_status add_entry(ckpt *c, const st_entry *e, const unsigned char *data, ims_error *err)
{
    ckpt_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)e->name; /* imsi_ckpt_add_tensor copies it */
    t.dtype = e->dtype;
    t.ndim = e->ndim;
    int empty = 0;
    for (int d = 0; d < e->ndim; d++) {
        t.shape[d] = e->shape[d];
        empty |= e->shape[d] == 0;
    }
    /* numel * size == end - begin <= file size, so no product below overflows */
    int64_t stride = 1;
    for (int d = e->ndim - 1; d >= 0 && !empty; d--) {
        t.stride[d] = stride;
        stride *= e->shape[d];
    }
    t.storage = data + e->begin;
    t.storage_nbytes = e->end - e->begin;
    return imsi_ckpt_add_tensor(c, &t, err);
}

static ims_status read_header(ckpt *c, const json_value *root, uint64_t header_len, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(root, JSON_OBJECT, "header", err);
    if (st)
        return st;
    size_t count = 0;
    st_entry *entries = calloc(root->obj.count ? root->obj.count : 1, sizeof *entries);
    if (!entries)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < root->obj.count && !st; i++) {
        const json_member *m = &root->obj.members[i];
        if (strcmp(m->key, "__metadata__") == 0)
            st = check_metadata(&m->value, err);
        else
            st = parse_entry(m, &entries[count++], err);
    }
    uint64_t data_start = 8 + header_len; /* <= c->size, checked by the caller */
    if (!st)
        st = check_tiling(entries, count, (uint64_t)c->size - data_start, err);
    for (size_t i = 0; i < count && !st; i++)
        st = add_entry(c, &entries[i], c->data + data_start, err);
    free(entries);
    return st;
}

ims_status imsi_ckpt_read_safetensors(ckpt *c, ims_error *err)
{
    c->format = CKPT_FORMAT_SAFETENSORS;
    if (c->size < 8)
        return ims_error_set(err, IMS_ERR_FORMAT, "safetensors: file of %zu bytes is shorter than the 8-byte header length",
                             c->size);
    uint64_t n = isw_load_u64(c->data);
    if (n > ST_HEADER_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT, "safetensors: header length %llu exceeds the limit of %u bytes",
                             (unsigned long long)n, ST_HEADER_MAX);
    if (n > (uint64_t)c->size - 8)
        return ims_error_set(err, IMS_ERR_FORMAT, "safetensors: header length %llu runs past the end of the %zu-byte file",
                             (unsigned long long)n, c->size);
    if (n == 0 || c->data[8] != '{')
        return ims_error_set(err, IMS_ERR_FORMAT, "safetensors: the header does not start with '{'");
    json_doc doc;
    json_limits lim = {ST_HEADER_MAX, 16, JSON_DEFAULT_MAX_VALUES};
    ims_status st = imsi_json_parse((const char *)c->data + 8, (size_t)n, &lim, &doc, err);
    if (st)
        return imsi_error_prefix(err, st, "safetensors header");
    st = read_header(c, doc.root, n, err);
    imsi_json_doc_free(&doc);
    if (st)
        return imsi_error_prefix(err, st, "safetensors");
    return IMS_OK;
}
