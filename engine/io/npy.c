/* npy.c: a strict NumPy .npy reader and crash-safe .npy / .npz writers.
 *
 * File layout (numpy/lib/format.py): the magic "\x93NUMPY", major and minor
 * version bytes, the header length (little-endian uint16 in 1.0, uint32 in 2.0
 * and 3.0), then the header: a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n'; then the array bytes, C order.
 * The reader accepts exactly that grammar (either quote, any key order, spaces
 * between tokens, an optional trailing comma), then only spaces before the
 * final '\n', and data exactly as long as the shape says: a header that lies
 * about the shape is caught by the length check. Versions 2.0 and 3.0 only
 * differ in the length field (and 3.0 allows UTF-8, which no key or dtype we
 * accept contains).
 *
 * Writers go through engine/core/atomic_file.h (a temporary file beside PATH,
 * fsync, rename over PATH, fsync of the folder): a crash leaves either the old
 * file or the new.
 * A .npz is a zip archive of stored (uncompressed) .npy members, the layout
 * numpy.savez makes; crc32 comes from zlib.
 */
#include "io/npy.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/file_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64

/* The dtypes .npy files may hold here, by ims_dtype; NULL: not one of them. */
static const char *const npy_descr[IMS_DTYPE_F64 + 1] = {
    [IMS_DTYPE_F32] = "<f4",
    [IMS_DTYPE_F16] = "<f2",
    [IMS_DTYPE_U8] = "|u1",
    [IMS_DTYPE_I64] = "<i8",
    [IMS_DTYPE_F64] = "<f8",
};

static int npy_dtype_ok(ims_dtype dtype) { return (unsigned)dtype <= IMS_DTYPE_F64 && npy_descr[dtype]; }

const char *ims_npy_dtype_descr(ims_dtype dtype) { return npy_dtype_ok(dtype) ? npy_descr[dtype] : "?"; }

/* An open array: the parsed header and where its data lies. */
struct ims_npy {
    ims_dtype dtype;
    int ndim;                        /* 0 (a scalar) .. IMS_NPY_MAX_DIMS */
    int64_t shape[IMS_NPY_MAX_DIMS]; /* unused dims are 1 */
    int64_t count;                   /* elements: the product of the shape */
    size_t elem_size;
    size_t nbytes;                   /* count * elem_size */
    const void *data;                /* aligned to elem_size; NULL when nbytes == 0 */
    void *aligned_copy;              /* the data, when the header left it misaligned */
    void *owned;                     /* the bytes parsed, when the handle owns them (an .npz member) */
    imsi_file_map map;               /* the file, when opened by path */
};

ims_dtype ims_npy_dtype(const ims_npy *npy) { return npy->dtype; }
int ims_npy_ndim(const ims_npy *npy) { return npy->ndim; }
const int64_t *ims_npy_shape(const ims_npy *npy) { return npy->shape; }
int64_t ims_npy_count(const ims_npy *npy) { return npy->count; }
size_t ims_npy_nbytes(const ims_npy *npy) { return npy->nbytes; }
const void *ims_npy_data(const ims_npy *npy) { return npy->data; }

/* ---- Header parsing ---------------------------------------------------------------- */

typedef struct npy_cursor {
    const char *p, *end;
} npy_cursor;

static void skip_spaces(npy_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int eat(npy_cursor *c, char ch)
{
    skip_spaces(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string (no escapes: no key or descr we accept needs one) into buf. */
static int parse_string(npy_cursor *c, char *buf, size_t size)
{
    skip_spaces(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || *c->p == '\n' || n + 1 >= size)
            return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    buf[n] = '\0';
    return 1;
}

/* "(d0, d1, ...)" with an optional trailing comma; "()" is a scalar, "(5,)" 1-d. */
static ims_status parse_shape(npy_cursor *c, ims_npy *out, ims_error *err)
{
    if (!eat(c, '('))
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: 'shape' is not a tuple");
    out->ndim = 0;
    int comma_after_last = 0;
    for (;;) {
        skip_spaces(c);
        if (eat(c, ')'))
            break;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return ims_error_set(err, IMS_ERR_FORMAT, "npy header: 'shape' has a dimension that is not a non-negative integer");
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return ims_error_set(err, IMS_ERR_FORMAT, "npy header: shape dimension %d overflows", out->ndim);
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
            c->p++; /* Python 2 longs, as numpy's reader allows */
        if (out->ndim >= IMS_NPY_MAX_DIMS)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npy header: more than %d dimensions", IMS_NPY_MAX_DIMS);
        out->shape[out->ndim++] = v;
        comma_after_last = eat(c, ',');
        if (comma_after_last)
            continue;
        if (eat(c, ')'))
            break;
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: 'shape' tuple is malformed");
    }
    if (out->ndim == 1 && !comma_after_last)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: 'shape' (n) is not a tuple (write (n,))");
    return IMS_OK;
}

static ims_status parse_descr(const char *descr, ims_npy *out, ims_error *err)
{
    for (int i = 0; i <= IMS_DTYPE_F64; i++)
        if (npy_descr[i] && (!strcmp(descr, npy_descr[i]) || (i == IMS_DTYPE_U8 && !strcmp(descr, "<u1")))) {
            out->dtype = (ims_dtype)i;
            out->elem_size = ims_dtype_size(out->dtype);
            return IMS_OK;
        }
    if (descr[0] == '>' && (!strcmp(descr + 1, "f4") || !strcmp(descr + 1, "f2") || !strcmp(descr + 1, "i8") || !strcmp(descr + 1, "f8")))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npy: big-endian dtype '%s' is not supported (use '<%s')",
                             descr, descr + 1);
    return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                         "npy: dtype '%s' is not supported (float32 '<f4', float16 '<f2', uint8 '|u1', int64 '<i8', float64 '<f8')",
                         descr);
}

/* The dict text [p, end): exactly the three keys, then only spaces. */
static ims_status parse_dict(const char *p, const char *end, ims_npy *out, ims_error *err)
{
    npy_cursor c = {p, end};
    if (!eat(&c, '{'))
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: does not start with '{'");
    int seen_descr = 0, seen_order = 0, seen_shape = 0;
    char descr[32] = "";
    for (;;) {
        if (eat(&c, '}'))
            break;
        char key[32];
        if (!parse_string(&c, key, sizeof key))
            return ims_error_set(err, IMS_ERR_FORMAT, "npy header: expected a quoted key or '}'");
        if (!eat(&c, ':'))
            return ims_error_set(err, IMS_ERR_FORMAT, "npy header: expected ':' after '%s'", key);
        if (!strcmp(key, "descr") && !seen_descr) {
            seen_descr = 1;
            if (!parse_string(&c, descr, sizeof descr))
                return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npy header: 'descr' is not a simple dtype string "
                                                           "(structured arrays are not supported)");
        } else if (!strcmp(key, "fortran_order") && !seen_order) {
            seen_order = 1;
            skip_spaces(&c);
            if (c.end - c.p >= 4 && !memcmp(c.p, "True", 4)) {
                return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                                     "npy: Fortran-order arrays are not supported (save with np.ascontiguousarray)");
            } else if (c.end - c.p >= 5 && !memcmp(c.p, "False", 5)) {
                c.p += 5;
            } else {
                return ims_error_set(err, IMS_ERR_FORMAT, "npy header: 'fortran_order' is not True or False");
            }
        } else if (!strcmp(key, "shape") && !seen_shape) {
            seen_shape = 1;
            ims_status st = parse_shape(&c, out, err);
            if (st)
                return st;
        } else {
            return ims_error_set(err, IMS_ERR_FORMAT, "npy header: unexpected or repeated key '%s'", key);
        }
        if (eat(&c, ','))
            continue;
        if (eat(&c, '}'))
            break;
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: expected ',' or '}' after '%s'", key);
    }
    if (!seen_descr || !seen_order || !seen_shape)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: missing key '%s'",
                             !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape");
    skip_spaces(&c);
    if (c.p != c.end)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: trailing garbage after the dict (byte 0x%02x)",
                             (unsigned char)*c.p);
    return parse_descr(descr, out, err);
}

/* Validates the bytes and fills out (data points into buf). */
static ims_status parse_bytes(const unsigned char *buf, size_t size, ims_npy *out, ims_error *err)
{
    if (size < NPY_MAGIC_LEN + 4 || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: not a .npy file (no \\x93NUMPY magic)");
    int major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npy: format version %d.%d is not supported (1.0, 2.0, 3.0)",
                             major, minor);
    size_t len_bytes = major == 1 ? 2 : 4;
    if (size < 8 + len_bytes)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: truncated in the header length");
    uint64_t header_len = buf[8] | (uint64_t)buf[9] << 8;
    if (len_bytes == 4)
        header_len |= (uint64_t)buf[10] << 16 | (uint64_t)buf[11] << 24;
    size_t start = 8 + len_bytes;
    if (header_len > size - start)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: header length %llu runs past the end of the %zu-byte file",
                             (unsigned long long)header_len, size);
    if (header_len == 0 || buf[start + header_len - 1] != '\n')
        return ims_error_set(err, IMS_ERR_FORMAT, "npy header: does not end with '\\n'");
    const char *text = (const char *)buf + start;
    for (uint64_t i = 0; i + 1 < header_len; i++)
        if (text[i] == '\0' || text[i] == '\n')
            return ims_error_set(err, IMS_ERR_FORMAT, "npy header: unexpected %s at byte %llu",
                                 text[i] ? "newline" : "NUL", (unsigned long long)i);
    ims_status st = parse_dict(text, text + header_len - 1, out, err);
    if (st)
        return st;
    for (int i = out->ndim; i < IMS_NPY_MAX_DIMS; i++)
        out->shape[i] = 1;
    uint64_t count = 1;
    for (int i = 0; i < out->ndim; i++)
        if (__builtin_mul_overflow(count, (uint64_t)out->shape[i], &count))
            return ims_error_set(err, IMS_ERR_FORMAT, "npy: shape product overflows at dimension %d", i);
    uint64_t nbytes;
    if (__builtin_mul_overflow(count, (uint64_t)out->elem_size, &nbytes) || nbytes > SIZE_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: data size overflows (%llu elements)", (unsigned long long)count);
    size_t data_off = start + (size_t)header_len;
    size_t have = size - data_off;
    if (have < nbytes)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: truncated data: the shape needs %llu bytes, the file has %zu",
                             (unsigned long long)nbytes, have);
    if (have > nbytes)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: %zu bytes after the data (the shape needs %llu): the header lies "
                             "about the shape", have - (size_t)nbytes, (unsigned long long)nbytes);
    if (count > INT64_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT, "npy: %llu elements are too many", (unsigned long long)count);
    out->count = (int64_t)count;
    out->nbytes = (size_t)nbytes;
    out->data = nbytes ? buf + data_off : NULL;
    return IMS_OK;
}

/* Makes out->data aligned to the element size (a copy if the header length is odd). */
static ims_status align_data(ims_npy *out, ims_error *err)
{
    if (!out->data || (uintptr_t)out->data % out->elem_size == 0)
        return IMS_OK;
    void *copy = aligned_alloc(NPY_ALIGN, (out->nbytes + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN);
    if (!copy)
        return ims_error_set(err, IMS_ERR_NOMEM, "npy: cannot allocate %zu bytes for an aligned copy", out->nbytes);
    memcpy(copy, out->data, out->nbytes);
    out->data = copy;
    out->aligned_copy = copy;
    return IMS_OK;
}

/* Parses [buf, buf + size) into a new handle that keeps map (owned from now on). */
static ims_status npy_new(const unsigned char *buf, size_t size, imsi_file_map map, ims_npy **out, ims_error *err)
{
    *out = NULL;
    ims_npy *npy = calloc(1, sizeof *npy);
    if (!npy) {
        imsi_file_map_close(&map);
        return ims_error_set(err, IMS_ERR_NOMEM, "npy: out of memory");
    }
    npy->map = map;
    ims_status st = parse_bytes(buf, size, npy, err);
    if (!st)
        st = align_data(npy, err);
    if (st) {
        ims_npy_close(npy);
        return st;
    }
    *out = npy;
    return IMS_OK;
}

ims_status ims_npy_parse(const void *buf, size_t size, ims_npy **out, ims_error *err)
{
    imsi_file_map none = {0};
    return npy_new(buf, size, none, out, err);
}

ims_status imsi_npy_parse_owned(void *buf, size_t size, ims_npy **out, ims_error *err)
{
    ims_status st = ims_npy_parse(buf, size, out, err);
    if (st)
        free(buf);
    else
        (*out)->owned = buf;
    return st;
}

ims_status ims_npy_open(const char *path, ims_npy **out, ims_error *err)
{
    *out = NULL;
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (!st)
        st = npy_new(map.data, map.size, map, out, err);
    return st ? imsi_error_prefix(err, st, "%s", path) : IMS_OK;
}

void ims_npy_close(ims_npy *npy)
{
    if (!npy)
        return;
    free(npy->aligned_copy);
    free(npy->owned);
    imsi_file_map_close(&npy->map);
    free(npy);
}

/* ---- Header formatting ----------------------------------------------------------- */

/* The header padded (with spaces) to at least min_total bytes, a multiple of
 * the alignment: a streamed writer reserves room for the final row count. */
static size_t format_header(char *buf, size_t size, ims_dtype dtype, int ndim, const int64_t *shape,
                            size_t min_total)
{
    if (!npy_dtype_ok(dtype) || ndim < 0 || ndim > IMS_NPY_MAX_DIMS)
        return 0;
    char dict[64 + IMS_NPY_MAX_DIMS * 24];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       npy_descr[dtype]);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return 0;
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld,%s", (long long)shape[i],
                        i + 1 < ndim ? " " : "");
    }
    if (ndim > 1)
        len--; /* "(3, 4)"; a 1-d tuple keeps its comma: "(5,)" */
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    size_t total = (10 + (size_t)len + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (total < min_total)
        total = min_total;
    if (total > size || total - 10 > 65535)
        return 0;
    memcpy(buf, NPY_MAGIC "\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)len);
    memset(buf + 10 + len, ' ', total - 10 - (size_t)len - 1);
    buf[total - 1] = '\n';
    return total;
}

size_t imsi_npy_format_header(char *buf, size_t size, ims_dtype dtype, int ndim, const int64_t *shape)
{
    return format_header(buf, size, dtype, ndim, shape, 0);
}

/* Bytes of an array of this shape; fails on a negative dim or an overflow. */
static ims_status array_bytes(ims_dtype dtype, int ndim, const int64_t *shape, size_t *out, ims_error *err)
{
    if (!npy_dtype_ok(dtype))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: dtype %s cannot be written (f32, f16, u8, i64)",
                             ims_dtype_name(dtype));
    if (ndim < 0 || ndim > IMS_NPY_MAX_DIMS)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: ndim %d is out of range 0..%d", ndim, IMS_NPY_MAX_DIMS);
    size_t n = ims_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, (size_t)shape[i], &n))
            return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: shape dimension %d (%lld) is negative or overflows", i,
                                 (long long)shape[i]);
    *out = n;
    return IMS_OK;
}

/* ---- .npy writer ------------------------------------------------------------------ */

struct ims_npy_writer {
    imsi_atomic_file file;
    size_t expected, written;
    /* IMS_NPY_ROWS_UNKNOWN: the header is rewritten at commit */
    int rows_unknown;
    size_t row_bytes, header_len;
    ims_dtype dtype;
    int ndim;
    int64_t shape[IMS_NPY_MAX_DIMS];
};

ims_status ims_npy_writer_open(const char *path, ims_dtype dtype, int ndim, const int64_t *shape,
                               ims_npy_writer **out, ims_error *err)
{
    *out = NULL;
    int rows_unknown = ndim >= 1 && ndim <= IMS_NPY_MAX_DIMS && shape[0] == IMS_NPY_ROWS_UNKNOWN;
    int64_t dims[IMS_NPY_MAX_DIMS] = {0};
    if (ndim > 0 && ndim <= IMS_NPY_MAX_DIMS)
        memcpy(dims, shape, (size_t)ndim * sizeof *dims); /* a scalar's shape may be NULL */
    if (rows_unknown)
        dims[0] = 1; /* the size of one row */
    size_t nbytes;
    ims_status st = array_bytes(dtype, ndim, dims, &nbytes, err);
    if (st)
        return st;
    if (rows_unknown)
        dims[0] = INT64_MAX; /* the widest row count: room for the final header */
    char header[512];
    size_t header_len = imsi_npy_format_header(header, sizeof header, dtype, ndim, dims);
    if (!header_len)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: cannot format the header");
    ims_npy_writer *w = calloc(1, sizeof *w);
    if (!w)
        return ims_error_set(err, IMS_ERR_NOMEM, "npy: out of memory");
    w->expected = rows_unknown ? SIZE_MAX : nbytes;
    w->rows_unknown = rows_unknown;
    w->row_bytes = nbytes;
    w->header_len = header_len;
    w->dtype = dtype;
    w->ndim = ndim;
    memcpy(w->shape, dims, sizeof dims);
    if ((st = imsi_atomic_file_open(&w->file, path, err)) ||
        (st = imsi_atomic_file_write(&w->file, header, header_len, err))) {
        imsi_atomic_file_abort(&w->file);
        free(w);
        return st;
    }
    *out = w;
    return IMS_OK;
}

ims_status ims_npy_writer_write(ims_npy_writer *w, const void *data, size_t nbytes, ims_error *err)
{
    if (nbytes > w->expected - w->written)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: %s: writing %zu bytes past the %zu the shape holds",
                             w->file.path, w->written + nbytes - w->expected, w->expected);
    ims_status st = imsi_atomic_file_write(&w->file, data, nbytes, err);
    if (!st)
        w->written += nbytes;
    return st;
}

/* The final header of a writer opened with IMS_NPY_ROWS_UNKNOWN, over the
 * reserved one. */
static ims_status complete_header(ims_npy_writer *w, ims_error *err)
{
    if (w->row_bytes == 0 || w->written % w->row_bytes != 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: %s: %zu bytes written, not a whole number of %zu-byte rows",
                             w->file.path, w->written, w->row_bytes);
    w->shape[0] = (int64_t)(w->written / w->row_bytes);
    char header[512];
    if (format_header(header, sizeof header, w->dtype, w->ndim, w->shape, w->header_len) != w->header_len)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npy: %s: cannot format the final header", w->file.path);
    if (fflush(w->file.f) != 0 || fseek(w->file.f, 0, SEEK_SET) != 0)
        return ims_error_set(err, IMS_ERR_IO, "npy: %s: cannot rewind to complete the header", w->file.tmp);
    w->written = w->expected; /* what commit checks */
    return imsi_atomic_file_write(&w->file, header, w->header_len, err);
}

ims_status ims_npy_writer_commit(ims_npy_writer *w, ims_error *err)
{
    ims_status st = w->rows_unknown ? complete_header(w, err) : IMS_OK;
    if (st) {
        imsi_atomic_file_abort(&w->file);
    } else if (w->written != w->expected) {
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "npy: %s: %zu of the shape's %zu bytes were written", w->file.path,
                           w->written, w->expected);
        imsi_atomic_file_abort(&w->file);
    } else {
        st = imsi_atomic_file_commit(&w->file, err); /* releases the file either way */
    }
    free(w);
    return st;
}

void ims_npy_writer_discard(ims_npy_writer *w)
{
    if (!w)
        return;
    imsi_atomic_file_abort(&w->file);
    free(w);
}

ims_status ims_npy_write(const char *path, ims_dtype dtype, int ndim, const int64_t *shape, const void *data,
                         ims_error *err)
{
    ims_npy_writer *w;
    ims_status st = ims_npy_writer_open(path, dtype, ndim, shape, &w, err);
    if (st)
        return st;
    if ((st = ims_npy_writer_write(w, data, w->expected, err))) {
        ims_npy_writer_discard(w);
        return st;
    }
    return ims_npy_writer_commit(w, err);
}

/* ---- .npz writer ------------------------------------------------------------------ */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Zip time fields for 1980-01-01 00:00 (numpy does not read them). */
#define ZIP_DOS_TIME 0
#define ZIP_DOS_DATE ((0 << 9) | (1 << 5) | 1)

typedef struct npz_entry {
    char name[80];
    uint32_t crc, size, offset;
} npz_entry;

static ims_status npz_check_name(const char *name, ims_error *err)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npz: member name '%s' is empty or longer than 64 bytes", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return ims_error_set(err, IMS_ERR_ARGUMENT, "npz: member name '%s' has a character other than [A-Za-z0-9_]",
                                 name);
    }
    return IMS_OK;
}

/* One local header + .npy bytes; fills e. */
static ims_status npz_write_member(imsi_atomic_file *f, const ims_npz_member *m, uint64_t *offset, npz_entry *e,
                                   ims_error *err)
{
    size_t nbytes;
    ims_status st = npz_check_name(m->name, err);
    if (st || (st = array_bytes(m->dtype, m->ndim, m->shape, &nbytes, err)))
        return st;
    char header[512];
    size_t header_len = imsi_npy_format_header(header, sizeof header, m->dtype, m->ndim, m->shape);
    if (!header_len)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npz: member '%s': cannot format the header", m->name);
    uint64_t size = (uint64_t)header_len + nbytes;
    snprintf(e->name, sizeof e->name, "%s.npy", m->name);
    size_t name_len = strlen(e->name);
    if (size > 0xffffffffu || *offset > 0xffffffffu - 30 - name_len - size)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npz: member '%s' (%llu bytes) needs zip64, which is not supported",
                             m->name, (unsigned long long)size);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)header, (uInt)header_len);
    const unsigned char *p = m->data;
    for (size_t left = nbytes; left > 0;) {
        uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, p, n);
        p += n;
        left -= n;
    }
    e->crc = (uint32_t)crc;
    e->size = (uint32_t)size;
    e->offset = (uint32_t)*offset;
    unsigned char lh[30];
    put_le(lh, 0x04034b50, 4);
    put_le(lh + 4, 20, 2); /* version needed: 2.0 */
    put_le(lh + 6, 0, 2);  /* flags */
    put_le(lh + 8, 0, 2);  /* method: stored */
    put_le(lh + 10, ZIP_DOS_TIME, 2);
    put_le(lh + 12, ZIP_DOS_DATE, 2);
    put_le(lh + 14, e->crc, 4);
    put_le(lh + 18, e->size, 4);
    put_le(lh + 22, e->size, 4);
    put_le(lh + 26, name_len, 2);
    put_le(lh + 28, 0, 2);
    if ((st = imsi_atomic_file_write(f, lh, sizeof lh, err)) || (st = imsi_atomic_file_write(f, e->name, name_len, err)) ||
        (st = imsi_atomic_file_write(f, header, header_len, err)) || (st = imsi_atomic_file_write(f, m->data, nbytes, err)))
        return st;
    *offset += sizeof lh + name_len + size;
    return IMS_OK;
}

static ims_status npz_write_directory(imsi_atomic_file *f, const npz_entry *entries, size_t count, uint64_t offset,
                                      ims_error *err)
{
    uint64_t cd_size = 0;
    for (size_t i = 0; i < count; i++) {
        size_t name_len = strlen(entries[i].name);
        unsigned char ch[46];
        put_le(ch, 0x02014b50, 4);
        put_le(ch + 4, 20, 2); /* made by: 2.0, MS-DOS attributes */
        put_le(ch + 6, 20, 2);
        put_le(ch + 8, 0, 2);
        put_le(ch + 10, 0, 2);
        put_le(ch + 12, ZIP_DOS_TIME, 2);
        put_le(ch + 14, ZIP_DOS_DATE, 2);
        put_le(ch + 16, entries[i].crc, 4);
        put_le(ch + 20, entries[i].size, 4);
        put_le(ch + 24, entries[i].size, 4);
        put_le(ch + 28, name_len, 2);
        put_le(ch + 30, 0, 2); /* extra */
        put_le(ch + 32, 0, 2); /* comment */
        put_le(ch + 34, 0, 2); /* disk */
        put_le(ch + 36, 0, 2); /* internal attributes */
        put_le(ch + 38, 0, 4); /* external attributes */
        put_le(ch + 42, entries[i].offset, 4);
        ims_status st = imsi_atomic_file_write(f, ch, sizeof ch, err);
        if (st || (st = imsi_atomic_file_write(f, entries[i].name, name_len, err)))
            return st;
        cd_size += sizeof ch + name_len;
    }
    if (offset + cd_size > 0xffffffffu)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npz: archive over 4 GiB needs zip64, which is not supported");
    unsigned char eocd[22];
    put_le(eocd, 0x06054b50, 4);
    put_le(eocd + 4, 0, 2);
    put_le(eocd + 6, 0, 2);
    put_le(eocd + 8, count, 2);
    put_le(eocd + 10, count, 2);
    put_le(eocd + 12, cd_size, 4);
    put_le(eocd + 16, offset, 4);
    put_le(eocd + 20, 0, 2);
    return imsi_atomic_file_write(f, eocd, sizeof eocd, err);
}

ims_status ims_npz_write(const char *path, const ims_npz_member *members, size_t count, ims_error *err)
{
    if (count == 0 || count > 1000)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "npz: %zu members (1..1000)", count);
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(members[i].name, members[j].name))
                return ims_error_set(err, IMS_ERR_ARGUMENT, "npz: member name '%s' repeats", members[i].name);
    npz_entry *entries = calloc(count, sizeof *entries);
    if (!entries)
        return ims_error_set(err, IMS_ERR_NOMEM, "npz: out of memory");
    imsi_atomic_file f;
    ims_status st = imsi_atomic_file_open(&f, path, err);
    uint64_t offset = 0;
    for (size_t i = 0; !st && i < count; i++)
        st = npz_write_member(&f, &members[i], &offset, &entries[i], err);
    if (!st)
        st = npz_write_directory(&f, entries, count, offset, err);
    free(entries);
    if (st) {
        imsi_atomic_file_abort(&f);
        return st;
    }
    return imsi_atomic_file_commit(&f, err);
}
