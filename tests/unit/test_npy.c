/* test_npy.c: the .npy reader and the .npy / .npz writers (engine/io/npy.c).
 *
 * Round trips through files (every dtype, 0-d to 4-d, an empty array), every
 * malformed case the reader must name (magic, version, header length, dict
 * grammar, Fortran order, dtypes, shape overflow, truncated and extra data,
 * trailing garbage), headers written by numpy itself (version 1.0 with 16-byte
 * padding, 2.0, 3.0), a misaligned buffer, and the .npz layout (read back with
 * our own minimal zip walk; tests/format/npy_numpy_check.py checks numpy.load).
 * argv[1]: a scratch folder.
 */
#include "io/npy.h"
#include "test.h"

#include <math.h>
#include <zlib.h>

static char scratch[4096];

static const char *path_in(const char *name)
{
    static char buf[4200];
    snprintf(buf, sizeof buf, "%s/%s", scratch, name);
    return buf;
}

/* A .npy image in memory: version, header dict text (padded to 64 and '\n'-ended
 * by us unless raw), then n data bytes of a pattern. */
static void build(test_buf *b, int major, const char *dict, size_t data_bytes)
{
    b->len = 0;
    size_t len_bytes = major == 1 ? 2 : 4;
    size_t dict_len = strlen(dict);
    size_t total = (8 + len_bytes + dict_len + 1 + 63) / 64 * 64;
    size_t hl = total - 8 - len_bytes;
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0};
    for (size_t i = 0; i < len_bytes; i++)
        pre[8 + i] = (unsigned char)(hl >> (8 * i));
    test_buf_put(b, pre, 8 + len_bytes);
    test_buf_put(b, dict, dict_len);
    for (size_t i = dict_len; i + 1 < hl; i++)
        test_buf_put(b, " ", 1);
    test_buf_put(b, "\n", 1);
    for (size_t i = 0; i < data_bytes; i++) {
        unsigned char v = (unsigned char)(i * 37 + 11);
        test_buf_put(b, &v, 1);
    }
}

/* The open array's header as plain fields, so that the checks below read
 * like the header they test (the handle itself is opaque). */
typedef struct npy_view {
    ims_npy *handle;
    ims_dtype dtype;
    int ndim;
    const int64_t *shape;
    int64_t count;
    size_t nbytes;
    const void *data;
} npy_view;

static ims_status view_fill(ims_status st, npy_view *v)
{
    if (!st) {
        v->dtype = ims_npy_dtype(v->handle);
        v->ndim = ims_npy_ndim(v->handle);
        v->shape = ims_npy_shape(v->handle);
        v->count = ims_npy_count(v->handle);
        v->nbytes = ims_npy_nbytes(v->handle);
        v->data = ims_npy_data(v->handle);
    }
    return st;
}

static ims_status view_parse(const void *buf, size_t size, npy_view *v, ims_error *err)
{
    memset(v, 0, sizeof *v);
    return view_fill(ims_npy_parse(buf, size, &v->handle, err), v);
}

static ims_status view_open(const char *path, npy_view *v, ims_error *err)
{
    memset(v, 0, sizeof *v);
    return view_fill(ims_npy_open(path, &v->handle, err), v);
}

static void view_close(npy_view *v)
{
    ims_npy_close(v->handle);
    memset(v, 0, sizeof *v);
}

/* Parse must fail with `code` and a message containing `needle`. */
static void expect_fail(const test_buf *b, ims_status code, const char *needle, const char *what)
{
    npy_view npy;
    ims_error err = {0};
    ims_status st = view_parse(b->p, b->len, &npy, &err);
    TEST_CHECK(st == code, "%s: got %s (%s), want %s", what, ims_status_name(st), err.msg, ims_status_name(code));
    TEST_CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    TEST_CHECK(!strchr(err.msg, '\n'), "%s: message is not one line", what);
}

static void test_valid_headers(void)
{
    test_buf b = {0};
    const char *dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
        "{\"shape\": (3, 4), \"descr\": \"<f4\", \"fortran_order\": False}",
        "{'descr':'<f4','fortran_order':False,'shape':(3,4,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }",
    };
    for (int major = 1; major <= 3; major++)
        for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
            build(&b, major, dicts[i], 48);
            npy_view npy;
            ims_error err = {0};
            TEST_OK(view_parse(b.p, b.len, &npy, &err), err);
            TEST_CHECK(npy.dtype == IMS_DTYPE_F32 && npy.ndim == 2 && npy.shape[0] == 3 && npy.shape[1] == 4 &&
                           npy.count == 12 && npy.nbytes == 48,
                       "v%d dict %zu: parsed wrong", major, i);
            TEST_CHECK(npy.data && ((const unsigned char *)npy.data)[1] == 48, "v%d dict %zu: data pointer", major, i);
            view_close(&npy);
        }
    /* Scalars, 1-d, zero-size, every dtype. */
    struct {
        const char *dict;
        int ndim;
        size_t bytes;
        ims_dtype dtype;
    } cases[] = {
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (), }", 0, 2, IMS_DTYPE_F16},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }", 1, 7, IMS_DTYPE_U8},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (7,), }", 1, 7, IMS_DTYPE_U8},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1, 3), }", 3, 48, IMS_DTYPE_I64},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 384), }", 2, 0, IMS_DTYPE_F32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        build(&b, 1, cases[i].dict, cases[i].bytes);
        npy_view npy;
        ims_error err = {0};
        TEST_OK(view_parse(b.p, b.len, &npy, &err), err);
        TEST_CHECK(npy.ndim == cases[i].ndim && npy.dtype == cases[i].dtype && npy.nbytes == cases[i].bytes,
                   "case %zu: ndim %d dtype %d nbytes %zu", i, npy.ndim, (int)npy.dtype, npy.nbytes);
        view_close(&npy);
    }
    free(b.p);
}

static void test_malformed(void)
{
    test_buf b = {0};
    const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    build(&b, 1, ok, 24);
    b.p[0] = 'X';
    expect_fail(&b, IMS_ERR_FORMAT, "magic", "bad magic");
    build(&b, 1, ok, 24);
    b.p[6] = 4;
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "version 4.0", "version 4");
    build(&b, 1, ok, 24);
    b.p[7] = 1;
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "version 1.1", "minor version");
    build(&b, 1, ok, 24);
    b.p[9] = 0x7f; /* header length far past the end */
    expect_fail(&b, IMS_ERR_FORMAT, "runs past the end", "header length");
    build(&b, 1, ok, 24);
    b.len = 9;
    expect_fail(&b, IMS_ERR_FORMAT, "magic", "truncated before the length");
    build(&b, 2, ok, 24);
    b.len = 10;
    expect_fail(&b, IMS_ERR_FORMAT, "header length", "v2 truncated length");
    build(&b, 1, ok, 24);
    b.p[b.len - 24 - 1] = ' '; /* no newline */
    expect_fail(&b, IMS_ERR_FORMAT, "does not end", "no newline");
    build(&b, 1, ok, 24);
    b.p[40] = '\n';
    expect_fail(&b, IMS_ERR_FORMAT, "newline", "inner newline");

    build(&b, 1, ok, 20);
    expect_fail(&b, IMS_ERR_FORMAT, "truncated data", "truncated data");
    build(&b, 1, ok, 28);
    expect_fail(&b, IMS_ERR_FORMAT, "lies about the shape", "extra data");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "truncated data", "shape too large");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } xyz", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "trailing garbage", "trailing garbage");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "Fortran", "fortran order");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "fortran_order", "bad bool");
    build(&b, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "'<i4' is not supported", "int32");
    build(&b, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "big-endian", "big endian float64");
    {
        /* float64: FID statistics files */
        build(&b, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
        npy_view v = {0};
        ims_error err = {0};
        TEST_OK(view_parse(b.p, b.len, &v, &err), err);
        TEST_CHECK(v.dtype == IMS_DTYPE_F64 && v.count == 6 && v.nbytes == 48, "float64: dtype %d count %lld",
                   (int)v.dtype, (long long)v.count);
        ims_npy_close(v.handle);
    }
    build(&b, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "big-endian", "big endian");
    build(&b, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "structured", "structured dtype");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False}", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "missing key 'shape'", "missing shape");
    build(&b, 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "repeated key 'descr'", "repeated key");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "key 'x'", "extra key");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "not a tuple", "(6) is an int");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "non-negative", "negative dim");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "malformed", "missing comma");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "overflows", "shape product overflow");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "overflows", "byte size overflow");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "overflows", "dimension overflow");
    build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "dimensions", "too many dims");
    build(&b, 1, "['descr']", 24);
    expect_fail(&b, IMS_ERR_FORMAT, "'{'", "not a dict");
    build(&b, 1, "{'descr': '<f4\\x', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_fail(&b, IMS_ERR_UNSUPPORTED, "descr", "escape in string");
    free(b.p);
}

static void test_misaligned(void)
{
    /* A buffer one byte off: data must come back aligned (a copy) and equal. */
    char header[512];
    int64_t shape[2] = {5, 3};
    size_t hl = imsi_npy_format_header(header, sizeof header, IMS_DTYPE_F32, 2, shape);
    TEST_CHECK(hl > 0 && hl % 64 == 0, "header length %zu", hl);
    unsigned char *buf = malloc(hl + 60 + 1);
    memcpy(buf + 1, header, hl);
    float values[15];
    uint64_t rng = 7;
    for (int i = 0; i < 15; i++)
        values[i] = test_rand_uniform(&rng, -3.0f, 3.0f);
    memcpy(buf + 1 + hl, values, sizeof values);
    npy_view npy;
    ims_error err = {0};
    TEST_OK(view_parse(buf + 1, hl + 60, &npy, &err), err);
    TEST_CHECK(npy.data && (uintptr_t)npy.data % 4 == 0 && !memcmp(npy.data, values, sizeof values),
               "misaligned data not copied correctly");
    view_close(&npy);
    free(buf);
}

static void test_round_trip(void)
{
    uint64_t rng = 12345;
    float f32[6 * 7];
    uint16_t f16[6 * 7];
    uint8_t u8[6 * 7];
    int64_t i64[6 * 7];
    for (int i = 0; i < 42; i++) {
        f32[i] = test_rand_uniform(&rng, -10.0f, 10.0f);
        f16[i] = ims_f32_to_f16(f32[i]);
        u8[i] = (uint8_t)(test_rand_u64(&rng) & 0xff);
        i64[i] = (int64_t)test_rand_u64(&rng);
    }
    const void *datas[4] = {f32, f16, u8, i64};
    const ims_dtype dtypes[4] = {IMS_DTYPE_F32, IMS_DTYPE_F16, IMS_DTYPE_U8, IMS_DTYPE_I64};
    int64_t shapes[3][4] = {{42}, {6, 7}, {2, 3, 7, 1}};
    int ndims[3] = {1, 2, 4};
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < 3; s++) {
            ims_error err = {0};
            const char *p = path_in("rt.npy");
            TEST_OK(ims_npy_write(p, dtypes[t], ndims[s], shapes[s], datas[t], &err), err);
            npy_view npy;
            TEST_OK(view_open(p, &npy, &err), err);
            size_t bytes = 42 * ims_dtype_size(dtypes[t]);
            TEST_CHECK(npy.dtype == dtypes[t] && npy.ndim == ndims[s] && npy.nbytes == bytes &&
                           npy.data && !memcmp(npy.data, datas[t], bytes),
                       "round trip dtype %d shape %d", t, s);
            TEST_CHECK((uintptr_t)npy.data % 64 == 0, "data of a written file is 64-byte aligned");
            view_close(&npy);
        }
    /* Empty array and scalar. */
    ims_error err = {0};
    int64_t empty[2] = {0, 5};
    TEST_OK(ims_npy_write(path_in("empty.npy"), IMS_DTYPE_F32, 2, empty, NULL, &err), err);
    npy_view npy;
    TEST_OK(view_open(path_in("empty.npy"), &npy, &err), err);
    TEST_CHECK(npy.count == 0 && npy.shape[1] == 5 && npy.data == NULL, "empty array");
    view_close(&npy);
    TEST_OK(ims_npy_write(path_in("scalar.npy"), IMS_DTYPE_I64, 0, NULL, i64, &err), err);
    TEST_OK(view_open(path_in("scalar.npy"), &npy, &err), err);
    TEST_CHECK(npy.ndim == 0 && npy.count == 1 && *(const int64_t *)npy.data == i64[0], "scalar");
    view_close(&npy);

    /* Streamed writer: too many bytes, too few bytes. */
    ims_npy_writer *w;
    int64_t shape[1] = {4};
    TEST_OK(ims_npy_writer_open(path_in("short.npy"), IMS_DTYPE_F32, 1, shape, &w, &err), err);
    TEST_OK(ims_npy_writer_write(w, f32, 8, &err), err);
    TEST_CHECK(ims_npy_writer_write(w, f32, 12, &err) == IMS_ERR_ARGUMENT, "write past the shape accepted");
    TEST_CHECK(ims_npy_writer_commit(w, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "8 of the shape's 16"),
               "short commit: %s", err.msg);
    TEST_CHECK(view_open(path_in("short.npy"), &npy, &err) == IMS_ERR_IO, "a failed commit left a file");

    /* Errors of open. */
    TEST_CHECK(view_open(path_in("missing.npy"), &npy, &err) == IMS_ERR_IO && strstr(err.msg, "missing.npy"),
               "missing file: %s", err.msg);
    TEST_CHECK(view_open(scratch, &npy, &err) == IMS_ERR_IO, "a folder opened as a file");
    TEST_CHECK(ims_npy_write("/nonexistent-dir/x.npy", IMS_DTYPE_F32, 1, shape, f32, &err) == IMS_ERR_IO,
               "write into a missing folder");
}

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint32_t rd16(const unsigned char *p) { return p[0] | p[1] << 8; }

static void test_npz(void)
{
    int64_t ids[2 * 3] = {5, 1, -1, 7, 0, 2};
    float scores[2 * 3] = {0.9f, 0.5f, -INFINITY, 0.8f, 0.25f, 0.125f};
    int64_t shape[2] = {2, 3};
    ims_npz_member m[2] = {{"ids", IMS_DTYPE_I64, 2, shape, ids}, {"scores", IMS_DTYPE_F32, 2, shape, scores}};
    ims_error err = {0};
    TEST_OK(ims_npz_write(path_in("out.npz"), m, 2, &err), err);
    size_t len;
    char *file = test_read_file(path_in("out.npz"), &len);
    TEST_CHECK(file && len > 22, "npz not written");
    if (!file)
        return;
    const unsigned char *p = (const unsigned char *)file;
    const unsigned char *eocd = p + len - 22;
    TEST_CHECK(rd32(eocd) == 0x06054b50 && rd16(eocd + 10) == 2, "end of central directory");
    uint32_t cd = rd32(eocd + 16);
    const void *expect[2] = {ids, scores};
    for (int i = 0; i < 2 && cd < len; i++) {
        const unsigned char *c = p + cd;
        TEST_CHECK(rd32(c) == 0x02014b50, "central header %d", i);
        uint32_t size = rd32(c + 20), off = rd32(c + 42), name_len = rd16(c + 28);
        const unsigned char *lh = p + off;
        TEST_CHECK(rd32(lh) == 0x04034b50 && rd16(lh + 8) == 0, "local header %d stored", i);
        const unsigned char *member = lh + 30 + rd16(lh + 26);
        TEST_CHECK(crc32(0, member, size) == rd32(c + 16), "member %d crc", i);
        npy_view npy;
        TEST_OK(view_parse(member, size, &npy, &err), err);
        TEST_CHECK(npy.count == 6 && !memcmp(npy.data, expect[i], npy.nbytes), "member %d data", i);
        view_close(&npy);
        cd += 46 + name_len;
    }
    free(file);
    ims_npz_member bad = {"a/b", IMS_DTYPE_F32, 2, shape, scores};
    TEST_CHECK(ims_npz_write(path_in("bad.npz"), &bad, 1, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "a/b"),
               "bad member name: %s", err.msg);
    ims_npz_member twice[2] = {m[0], m[0]};
    TEST_CHECK(ims_npz_write(path_in("bad.npz"), twice, 2, &err) == IMS_ERR_ARGUMENT, "repeated member");
}

/* A streamed writer that learns its row count at the end: 0, 1 and 1000 rows
 * (the header completed in place, a valid file read back), and a partial row
 * refused with the old file left alone. */
static void test_rows_unknown(void)
{
    ims_error err = {0};
    static const int counts[3] = {0, 1, 1000};
    for (int c = 0; c < 3; c++) {
        ims_npy_writer *w = NULL;
        int64_t shape[2] = {IMS_NPY_ROWS_UNKNOWN, 7};
        TEST_OK(ims_npy_writer_open(path_in("rows.npy"), IMS_DTYPE_F32, 2, shape, &w, &err), err);
        for (int r = 0; w && r < counts[c]; r++) {
            float row[7];
            for (int i = 0; i < 7; i++)
                row[i] = (float)(r * 7 + i) + 0.5f;
            TEST_OK(ims_npy_writer_write(w, row, sizeof row, &err), err);
        }
        if (w)
            TEST_OK(ims_npy_writer_commit(w, &err), err);
        npy_view npy;
        TEST_OK(view_open(path_in("rows.npy"), &npy, &err), err);
        TEST_CHECK(npy.ndim == 2 && npy.shape[0] == counts[c] && npy.shape[1] == 7, "%d rows: shape (%lld, %lld)",
                   counts[c], (long long)npy.shape[0], (long long)npy.shape[1]);
        for (int i = 0; npy.data && i < counts[c] * 7; i++)
            TEST_CHECK(((const float *)npy.data)[i] == (float)i + 0.5f, "element %d", i);
        view_close(&npy);
    }
    ims_npy_writer *w = NULL;
    int64_t shape[2] = {IMS_NPY_ROWS_UNKNOWN, 7};
    float half_row[3] = {1, 2, 3};
    TEST_OK(ims_npy_writer_open(path_in("rows.npy"), IMS_DTYPE_F32, 2, shape, &w, &err), err);
    TEST_OK(ims_npy_writer_write(w, half_row, sizeof half_row, &err), err);
    TEST_CHECK(ims_npy_writer_commit(w, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "whole number"),
               "a partial row: %s", err.msg);
    npy_view npy;
    TEST_OK(view_open(path_in("rows.npy"), &npy, &err), err);
    TEST_CHECK(npy.shape[0] == 1000, "the previous file is left as it was");
    view_close(&npy);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "%s", test_fixture_dir(argc, argv));
    test_valid_headers();
    test_malformed();
    test_misaligned();
    test_round_trip();
    test_npz();
    test_rows_unknown();
    return test_finish();
}
