/* test_torch_zip.c: the zip reader (zip_reader.h) and the PyTorch zip
 * checkpoint reader (torch_zip.c).
 *
 * Positive: the fixtures in tests/fixtures/torch_zip/ were written by PyTorch
 * (make_fixtures.py); each loads, and every tensor's dtype, shape, strides,
 * offset, shared storage and exact values match <name>.expected.txt.
 *
 * Negative: archives are built here, byte by byte, by a small zip writer that
 * follows PyTorch's layout (64-byte aligned data behind an 'FB' extra field,
 * data descriptors, zip64 end records), a plain one, or one with zip64 extra
 * fields, from the fixtures' entries or from state_dict pickles written here
 * (protocol 2, as torch.save writes them); then one field is broken per case
 * and the reader must refuse it with a message naming the problem. Every
 * truncation of an archive and random corruptions must be refused (or read)
 * without a crash. Each candidate file is copied into a buffer of exactly its
 * size, so ASan sees any over-read.
 *
 * The fixture folder is argv[1] (tests/fixtures/torch_zip).
 */
#include "test.h"

#include "weights_tools/checkpoint.h"
#include "weights_tools/zip_reader.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

/* ---- Files --------------------------------------------------------------------------- */

static char fixture_dir[4096];

typedef test_buf buf;

static void put_u16(buf *b, uint32_t v)
{
    unsigned char t[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    test_buf_put(b, t, 2);
}

static void put_u32(buf *b, uint32_t v)
{
    put_u16(b, v & 0xffff);
    put_u16(b, v >> 16);
}

static void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void set_u16(buf *b, size_t off, uint32_t v)
{
    b->p[off] = (unsigned char)v;
    b->p[off + 1] = (unsigned char)(v >> 8);
}

static void set_u32(buf *b, size_t off, uint32_t v)
{
    set_u16(b, off, v & 0xffff);
    set_u16(b, off + 2, v >> 16);
}

static void set_u64(buf *b, size_t off, uint64_t v)
{
    set_u32(b, off, (uint32_t)v);
    set_u32(b, off + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const buf *b, size_t off)
{
    return (uint32_t)b->p[off] | (uint32_t)b->p[off + 1] << 8 | (uint32_t)b->p[off + 2] << 16 |
           (uint32_t)b->p[off + 3] << 24;
}

static buf read_fixture(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    buf b = {0};
    FILE *f = fopen(path, "rb");
    TEST_CHECK(f != NULL, "cannot open fixture %s (pass the fixture folder as argv[1])", path);
    if (!f)
        return b;
    unsigned char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        test_buf_put(&b, chunk, n);
    fclose(f);
    return b;
}

/* ---- A zip writer --------------------------------------------------------------------- */

#define MAX_ENTRIES 64

typedef struct zsrc {
    char name[256];
    const unsigned char *data;
    size_t size;
} zsrc;

typedef struct zopts {
    int pytorch;       /* 64-byte aligned data ('FB' extra), data descriptors, zip64 end records */
    int zip64_extra;   /* central sizes and offsets as 0xffffffff plus a zip64 extra field */
    int deflate;       /* entry index to compress with raw deflate (method 8), or -1 */
} zopts;

typedef struct zlayout {
    size_t count;
    size_t local[MAX_ENTRIES], data[MAX_ENTRIES], central[MAX_ENTRIES];
    size_t cd_offset, zip64_eocd, locator, eocd; /* zip64_eocd/locator: 0 if absent */
} zlayout;

static const zopts PYTORCH = {1, 0, -1}, PLAIN = {0, 0, -1};

static size_t raw_deflate(const unsigned char *src, size_t n, unsigned char *dst, size_t cap)
{
    z_stream s = {0};
    if (deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    s.next_in = (unsigned char *)src, s.avail_in = (uInt)n;
    s.next_out = dst, s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END)
        abort();
    size_t out = s.total_out;
    deflateEnd(&s);
    return out;
}

static buf build_zip(const zsrc *src, size_t n, const zopts *o, zlayout *l)
{
    buf b = {0};
    static unsigned char packed[1 << 16];
    memset(l, 0, sizeof *l);
    l->count = n;
    uint32_t crcs[MAX_ENTRIES];
    size_t csizes[MAX_ENTRIES];
    for (size_t i = 0; i < n; i++) {
        const unsigned char *data = src[i].data;
        size_t csize = src[i].size, name_len = strlen(src[i].name);
        int deflated = o->deflate == (int)i;
        if (deflated) {
            csize = raw_deflate(src[i].data, src[i].size, packed, sizeof packed);
            data = packed;
        }
        crcs[i] = (uint32_t)crc32(0, src[i].data, (uInt)src[i].size);
        csizes[i] = csize;
        l->local[i] = b.len;
        size_t extra = 0;
        if (o->pytorch) { /* PyTorch: 'FB' extra field of 'Z's up to a 64-byte boundary */
            size_t at = b.len + 30 + name_len + 4;
            extra = 4 + (64 - at % 64) % 64;
        }
        put_u32(&b, 0x04034b50);
        put_u16(&b, 20);
        put_u16(&b, o->pytorch ? 0x0808 : 0);
        put_u16(&b, deflated ? 8 : 0);
        put_u32(&b, 0); /* time, date */
        put_u32(&b, o->pytorch ? 0 : crcs[i]);
        put_u32(&b, o->pytorch ? 0 : (uint32_t)csize);
        put_u32(&b, o->pytorch ? 0 : (uint32_t)src[i].size);
        put_u16(&b, (uint32_t)name_len);
        put_u16(&b, (uint32_t)extra);
        test_buf_put(&b, src[i].name, name_len);
        if (extra) {
            test_buf_put(&b, "FB", 2);
            put_u16(&b, (uint32_t)(extra - 4));
            for (size_t k = 4; k < extra; k++)
                test_buf_put(&b, "Z", 1);
        }
        l->data[i] = b.len;
        test_buf_put(&b, data, csize);
        if (o->pytorch) {
            put_u32(&b, 0x08074b50);
            put_u32(&b, crcs[i]);
            put_u32(&b, (uint32_t)csize);
            put_u32(&b, (uint32_t)src[i].size);
        }
    }
    l->cd_offset = b.len;
    for (size_t i = 0; i < n; i++) {
        size_t name_len = strlen(src[i].name);
        int deflated = o->deflate == (int)i;
        l->central[i] = b.len;
        put_u32(&b, 0x02014b50);
        put_u16(&b, 0x031e);
        put_u16(&b, o->zip64_extra ? 45 : 20);
        put_u16(&b, o->pytorch ? 0x0808 : 0);
        put_u16(&b, deflated ? 8 : 0);
        put_u32(&b, 0);
        put_u32(&b, crcs[i]);
        put_u32(&b, o->zip64_extra ? 0xffffffffu : (uint32_t)csizes[i]);
        put_u32(&b, o->zip64_extra ? 0xffffffffu : (uint32_t)src[i].size);
        put_u16(&b, (uint32_t)name_len);
        put_u16(&b, o->zip64_extra ? 28 : 0);
        put_u16(&b, 0); /* comment */
        put_u16(&b, 0); /* disk */
        put_u16(&b, 0);
        put_u32(&b, 0);
        put_u32(&b, o->zip64_extra ? 0xffffffffu : (uint32_t)l->local[i]);
        test_buf_put(&b, src[i].name, name_len);
        if (o->zip64_extra) {
            put_u16(&b, 1);
            put_u16(&b, 24);
            put_u64(&b, src[i].size);
            put_u64(&b, csizes[i]);
            put_u64(&b, l->local[i]);
        }
    }
    size_t cd_size = b.len - l->cd_offset;
    if (o->pytorch) {
        l->zip64_eocd = b.len;
        put_u32(&b, 0x06064b50);
        put_u64(&b, 44);
        put_u16(&b, 45);
        put_u16(&b, 45);
        put_u32(&b, 0);
        put_u32(&b, 0);
        put_u64(&b, n);
        put_u64(&b, n);
        put_u64(&b, cd_size);
        put_u64(&b, l->cd_offset);
        l->locator = b.len;
        put_u32(&b, 0x07064b50);
        put_u32(&b, 0);
        put_u64(&b, l->zip64_eocd);
        put_u32(&b, 1);
    }
    l->eocd = b.len;
    put_u32(&b, 0x06054b50);
    put_u32(&b, 0);
    put_u16(&b, (uint32_t)n);
    put_u16(&b, (uint32_t)n);
    put_u32(&b, (uint32_t)cd_size);
    put_u32(&b, (uint32_t)l->cd_offset);
    put_u16(&b, 0);
    return b;
}

/* The entries of a valid archive, as sources for build_zip (data point into f). */
static size_t entries_of(const buf *f, zsrc *out)
{
    zip_archive z;
    ims_error err = {0};
    TEST_OK(imsi_zip_open(f->p, f->len, 0, &z, &err), err);
    size_t n = z.count < MAX_ENTRIES ? z.count : MAX_ENTRIES;
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].name, sizeof out[i].name, "%s", z.entries[i].name);
        out[i].data = z.entries[i].data;
        out[i].size = (size_t)z.entries[i].size;
    }
    imsi_zip_close(&z);
    return n;
}

static zsrc *find_src(zsrc *s, size_t n, const char *suffix)
{
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(s[i].name), b = strlen(suffix);
        if (a >= b && strcmp(s[i].name + a - b, suffix) == 0)
            return &s[i];
    }
    TEST_CHECK(0, "no entry ending in '%s'", suffix);
    return &s[0];
}

static void remove_src(zsrc *s, size_t *n, zsrc *which)
{
    size_t i = (size_t)(which - s);
    memmove(&s[i], &s[i + 1], (*n - i - 1) * sizeof *s);
    (*n)--;
}

/* ---- Running the readers on exact-size copies ----------------------------------------- */

static ims_status open_zip_copy(const unsigned char *p, size_t n, unsigned flags, ims_error *err, size_t *count)
{
    unsigned char *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, p, n);
    zip_archive z;
    ims_status st = imsi_zip_open(copy, n, flags, &z, err);
    if (st == IMS_OK) {
        for (size_t i = 0; i < z.count; i++) {
            TEST_CHECK(imsi_zip_find(&z, z.entries[i].name) == &z.entries[i], "imsi_zip_find('%s')", z.entries[i].name);
            TEST_CHECK(z.entries[i].data >= copy && z.entries[i].size <= (size_t)(copy + n - z.entries[i].data),
                       "entry '%s' lies inside the buffer", z.entries[i].name);
        }
        TEST_CHECK(imsi_zip_find(&z, "") == NULL && imsi_zip_find(&z, "arch/data/00") == NULL, "imsi_zip_find of absent names");
        if (count)
            *count = z.count;
    } else {
        TEST_CHECK(z.count == 0 && z.entries == NULL, "a failed imsi_zip_open leaves the archive empty");
    }
    imsi_zip_close(&z);
    free(copy);
    return st;
}

/* Runs imsi_ckpt_read_torch_zip directly (whatever the first bytes) on a copy. */
static ims_status read_ckpt_copy(const unsigned char *p, size_t n, ims_error *err, size_t *count)
{
    unsigned char *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, p, n);
    ckpt *c = calloc(1, sizeof *c);
    c->data = copy;
    c->size = n;
    ims_status st = imsi_ckpt_read_torch_zip(c, err);
    if (st == IMS_OK) {
        for (size_t i = 0; i < c->count; i++) { /* every accepted tensor is readable */
            int64_t numel = imsi_ckpt_tensor_numel(&c->tensors[i]);
            if (numel > 0 && numel < (1 << 20)) {
                double *v = malloc((size_t)numel * sizeof *v);
                imsi_ckpt_tensor_read_f64(&c->tensors[i], v);
                free(v);
            }
        }
        if (count)
            *count = c->count;
    }
    TEST_CHECK(c->format == CKPT_FORMAT_TORCH_ZIP, "format set");
    imsi_ckpt_free(c);
    free(copy);
    return st;
}

static void check_refusal(const char *what, ims_status st, const ims_error *err, ims_status want, const char *needle)
{
    TEST_CHECK(st == want, "%s: got %s (%s), expected %s", what, ims_status_name(st), err->msg, ims_status_name(want));
    TEST_CHECK(needle == NULL || strstr(err->msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err->msg,
               needle);
    TEST_CHECK(st == IMS_OK || (err->msg[0] && !strchr(err->msg, '\n')), "%s: one-line message '%s'", what, err->msg);
}

static void expect_zip_refused(const char *what, const buf *b, ims_status want, const char *needle)
{
    ims_error err = {0};
    ims_status st = open_zip_copy(b->p, b->len, 0, &err, NULL);
    check_refusal(what, st, &err, want, needle);
}

static void expect_ckpt_refused(const char *what, const buf *b, ims_status want, const char *needle)
{
    ims_error err = {0};
    ims_status st = read_ckpt_copy(b->p, b->len, &err, NULL);
    check_refusal(what, st, &err, want, needle);
}

/* ---- Expected values ------------------------------------------------------------------ */

typedef struct tokens {
    char *text;
    char *at;
} tokens;

static const char *next_token(tokens *t)
{
    for (;;) {
        while (*t->at == ' ' || *t->at == '\n' || *t->at == '\t' || *t->at == '\r')
            t->at++;
        if (*t->at != '#')
            break;
        while (*t->at && *t->at != '\n')
            t->at++;
    }
    if (!*t->at)
        return NULL;
    char *start = t->at;
    while (*t->at && *t->at != ' ' && *t->at != '\n' && *t->at != '\t' && *t->at != '\r')
        t->at++;
    if (*t->at)
        *t->at++ = '\0';
    return start;
}

static long long next_int(tokens *t)
{
    const char *s = next_token(t);
    return s ? strtoll(s, NULL, 10) : -1;
}

static int same_value(double got, double want)
{
    if (isnan(want))
        return isnan(got);
    return memcmp(&got, &want, sizeof got) == 0; /* exact, and -0.0 != 0.0 */
}

/* Compares every tensor of c with the expected file, in order. */
static void check_expected(const char *fixture, const ckpt *c, int big_endian)
{
    char name[300];
    snprintf(name, sizeof name, "%s.expected.txt", fixture);
    buf text = read_fixture(name);
    test_buf_put(&text, "", 1);
    tokens t = {(char *)text.p, (char *)text.p};
    const unsigned char *storages[64] = {0};
    size_t index = 0;
    const char *tok;
    while ((tok = next_token(&t)) != NULL) {
        TEST_CHECK(strcmp(tok, "tensor") == 0, "%s: expected 'tensor', got '%s'", fixture, tok);
        char tname[256], dtype[32];
        snprintf(tname, sizeof tname, "%s", next_token(&t));
        snprintf(dtype, sizeof dtype, "%s", next_token(&t));
        long long storage = next_int(&t), offset = next_int(&t), ndim = next_int(&t);
        long long shape[CKPT_MAX_DIMS] = {0}, stride[CKPT_MAX_DIMS] = {0};
        for (long long d = 0; d < ndim && d < CKPT_MAX_DIMS; d++)
            shape[d] = next_int(&t);
        for (long long d = 0; d < ndim && d < CKPT_MAX_DIMS; d++)
            stride[d] = next_int(&t);
        TEST_CHECK(strcmp(next_token(&t), "values") == 0, "%s: 'values' line", fixture);
        long long numel = next_int(&t);
        double *want = calloc((size_t)numel + 1, sizeof *want);
        for (long long i = 0; i < numel; i++)
            want[i] = strtod(next_token(&t), NULL);

        const ckpt_tensor *ct = imsi_ckpt_find(c, tname);
        TEST_CHECK(ct != NULL, "%s: tensor '%s' is missing", fixture, tname);
        if (ct) {
            TEST_CHECK(ct == &c->tensors[index], "%s: tensor '%s' is in file order (%zu)", fixture, tname, index);
            TEST_CHECK(strcmp(imsi_ckpt_dtype_name(ct->dtype), dtype) == 0, "%s: '%s' dtype %s, expected %s", fixture,
                       tname, imsi_ckpt_dtype_name(ct->dtype), dtype);
            TEST_CHECK(ct->ndim == ndim, "%s: '%s' ndim %d, expected %lld", fixture, tname, ct->ndim, ndim);
            for (int d = 0; d < ct->ndim && d < ndim; d++)
                TEST_CHECK(ct->shape[d] == shape[d] && ct->stride[d] == stride[d],
                           "%s: '%s' dim %d: shape %lld stride %lld, expected %lld %lld", fixture, tname, d,
                           (long long)ct->shape[d], (long long)ct->stride[d], shape[d], stride[d]);
            TEST_CHECK(ct->storage_offset == offset, "%s: '%s' offset %lld, expected %lld", fixture, tname,
                       (long long)ct->storage_offset, offset);
            TEST_CHECK(ct->big_endian == big_endian, "%s: '%s' big_endian %d", fixture, tname, ct->big_endian);
            if (storage >= 0 && storage < 64) { /* equal storage numbers <=> one shared storage */
                if (!storages[storage])
                    storages[storage] = ct->storage;
                TEST_CHECK(storages[storage] == ct->storage, "%s: '%s' shares storage %lld", fixture, tname, storage);
                for (int s = 0; s < 64; s++)
                    TEST_CHECK(s == storage || !storages[s] || storages[s] != ct->storage || ct->storage_nbytes == 0,
                               "%s: '%s' does not share storage %d", fixture, tname, s);
            }
            TEST_CHECK(imsi_ckpt_tensor_numel(ct) == numel, "%s: '%s' numel", fixture, tname);
            if (imsi_ckpt_tensor_numel(ct) == numel) {
                double *got = calloc((size_t)numel + 1, sizeof *got);
                imsi_ckpt_tensor_read_f64(ct, got);
                int bad = 0;
                for (long long i = 0; i < numel; i++)
                    if (!same_value(got[i], want[i]) && bad++ < 3)
                        TEST_CHECK(0, "%s: '%s'[%lld] = %.17g, expected %.17g", fixture, tname, i, got[i], want[i]);
                free(got);
            }
        }
        free(want);
        index++;
    }
    TEST_CHECK(index == c->count, "%s: %zu tensors expected, the reader gives %zu", fixture, index, c->count);
    free(text.p);
}

static const char *const fixtures[] = {"dtypes", "views", "module", "parameter", "big_endian", "zip64"};
#define FIXTURE_COUNT (sizeof fixtures / sizeof *fixtures)

static void test_fixtures(void)
{
    for (size_t i = 0; i < FIXTURE_COUNT; i++) {
        char name[300], path[4400];
        snprintf(name, sizeof name, "%s.pt", fixtures[i]);
        snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
        /* the archive on its own, CRCs included */
        buf f = read_fixture(name);
        ims_error err = {0};
        size_t count = 0;
        TEST_OK(open_zip_copy(f.p, f.len, ZIP_OPEN_VERIFY_CRC, &err, &count), err);
        TEST_CHECK(count >= 3, "%s: %zu entries", name, count);
        /* the checkpoint, through the public entry point (mmap) */
        ckpt *c = NULL;
        TEST_OK(imsi_ckpt_open(path, &c, &err), err);
        if (c) {
            TEST_CHECK(c->format == CKPT_FORMAT_TORCH_ZIP, "%s: format %s", name, imsi_ckpt_format_name(c->format));
            check_expected(fixtures[i], c, strcmp(fixtures[i], "big_endian") == 0);
            imsi_ckpt_free(c);
        }
        free(f.p);
    }
}

/* The fixture's entries rewritten by build_zip in each layout read back the same. */
static void test_rebuilt_layouts(void)
{
    static const zopts layouts[] = {{1, 0, -1}, {0, 0, -1}, {1, 1, -1}, {0, 1, -1}};
    buf f = read_fixture("views.pt");
    zsrc src[MAX_ENTRIES];
    size_t n = entries_of(&f, src);
    for (size_t k = 0; k < sizeof layouts / sizeof *layouts; k++) {
        zlayout l;
        buf b = build_zip(src, n, &layouts[k], &l);
        ims_error err = {0};
        size_t count = 0;
        TEST_OK(open_zip_copy(b.p, b.len, ZIP_OPEN_VERIFY_CRC, &err, &count), err);
        TEST_CHECK(count == n, "layout %zu: %zu entries, expected %zu", k, count, n);
        ckpt *c = NULL;
        TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
        if (c) {
            check_expected("views", c, 0);
            imsi_ckpt_free(c);
        }
        free(b.p);
    }
    /* the prefix is the first entry's folder, whatever its name */
    for (size_t i = 0; i < n; i++) {
        char rest[200];
        snprintf(rest, sizeof rest, "%.199s", strchr(src[i].name, '/'));
        snprintf(src[i].name, sizeof src[i].name, "my model (v2).final%s", rest);
    }
    zlayout l;
    buf b = build_zip(src, n, &PYTORCH, &l);
    ckpt *c = NULL;
    ims_error err = {0};
    TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
    if (c) {
        check_expected("views", c, 0);
        imsi_ckpt_free(c);
    }
    free(b.p);
    free(f.p);
}

/* ---- Hostile archives: the zip layer ---------------------------------------------------- */

/* A small valid PyTorch-layout archive and its layout; entries 0..2. */
static const unsigned char payload[] = "0123456789abcdefghijklmnopqrstuvwxyz";

static buf small_zip(const zopts *o, zlayout *l)
{
    zsrc s[3] = {{"arch/data.pkl", payload, 10}, {"arch/data/0", payload + 10, 16}, {"arch/version", payload, 2}};
    return build_zip(s, 3, o, l);
}

static void test_truncation(void)
{
    /* Every prefix of every layout of a small archive and of a real fixture. */
    zlayout l;
    for (int k = 0; k < 2; k++) {
        buf b = small_zip(k ? &PLAIN : &PYTORCH, &l);
        int refused = 0;
        for (size_t len = 0; len < b.len; len++) {
            ims_error err = {0};
            ims_status st = open_zip_copy(b.p, len, 0, &err, NULL);
            refused += st != IMS_OK;
            check_refusal("truncated zip", st, &err, IMS_ERR_FORMAT, "zip");
        }
        TEST_CHECK(refused == (int)b.len, "every truncation refused");
        free(b.p);
    }
    const char *fx[] = {"module.pt", "big_endian.pt"};
    for (int k = 0; k < 2; k++) {
        buf f = read_fixture(fx[k]);
        for (size_t len = 0; len < f.len; len++) {
            ims_error err = {0};
            ims_status st = read_ckpt_copy(f.p, len, &err, NULL);
            check_refusal("truncated checkpoint", st, &err, IMS_ERR_FORMAT, NULL);
        }
        free(f.p);
    }
    /* At the section boundaries, naming the reason. */
    buf b = small_zip(&PYTORCH, &l);
    struct {
        size_t len;
        const char *needle;
    } cuts[] = {
        {l.local[1], "no end of central directory"},
        {l.data[1], "no end of central directory"},
        {l.data[1] + 8, "no end of central directory"},
        {l.cd_offset, "no end of central directory"},
        {l.central[2], "no end of central directory"},
        {l.zip64_eocd, "no end of central directory"},
        {l.locator, "no end of central directory"},
        {l.eocd, "no end of central directory"},
        {l.eocd + 21, "no end of central directory"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        buf t = {b.p, cuts[i].len, 0};
        expect_zip_refused("cut at a boundary", &t, IMS_ERR_FORMAT, cuts[i].needle);
    }
    /* Entries cut short, with the central directory and end records moved
     * (and their offsets fixed) to sit right after the cut. */
    struct {
        size_t keep;
        const char *needle;
    } shorts[] = {
        {l.local[1] + 10, "'arch/data/0': local header offset"},
        {l.data[1] - 2, "'arch/data/0': local header at offset"},
        {l.data[1] + 3, "'arch/data/0': 16 bytes of data at offset"},
        {l.local[2], "'arch/version': local header offset"},
    };
    for (size_t i = 0; i < sizeof shorts / sizeof *shorts; i++) {
        buf t = {0};
        size_t delta = l.cd_offset - shorts[i].keep;
        test_buf_put(&t, b.p, shorts[i].keep);
        test_buf_put(&t, b.p + l.cd_offset, b.len - l.cd_offset);
        set_u64(&t, l.zip64_eocd - delta + 48, shorts[i].keep);
        set_u64(&t, l.locator - delta + 8, l.zip64_eocd - delta);
        set_u32(&t, l.eocd - delta + 16, (uint32_t)shorts[i].keep);
        expect_zip_refused("entry cut short", &t, IMS_ERR_FORMAT, shorts[i].needle);
        free(t.p);
    }
    free(b.p);
}

/* Applies fn to a fresh copy of the small archive and expects a refusal. */
typedef void (*mutator)(buf *b, const zlayout *l);

static void refuse_mutation(const char *what, const zopts *o, mutator fn, ims_status want, const char *needle)
{
    zlayout l;
    buf b = small_zip(o, &l);
    fn(&b, &l);
    expect_zip_refused(what, &b, want, needle);
    free(b.p);
}

static void m_eocd_comment(buf *b, const zlayout *l) { set_u16(b, l->eocd + 20, 5); }
static void m_eocd_count(buf *b, const zlayout *l) { set_u16(b, l->eocd + 8, 2), set_u16(b, l->eocd + 10, 2); }
static void m_eocd_disk(buf *b, const zlayout *l) { set_u16(b, l->eocd + 4, 1); }
static void m_eocd_cd_size(buf *b, const zlayout *l) { set_u32(b, l->eocd + 12, get_u32(b, l->eocd + 12) - 1); }
static void m_eocd_cd_offset(buf *b, const zlayout *l) { set_u32(b, l->eocd + 16, 0x7fffffff); }
static void m_eocd_saturated(buf *b, const zlayout *l) { set_u32(b, l->eocd + 16, 0xffffffff); }
static void m_eocd_disk_count(buf *b, const zlayout *l) { set_u16(b, l->eocd + 8, 2); }
static void m_classic_count_big(buf *b, const zlayout *l)
{
    set_u16(b, l->eocd + 8, 40), set_u16(b, l->eocd + 10, 40);
}
static void m_locator_offset(buf *b, const zlayout *l) { set_u64(b, l->locator + 8, UINT64_MAX - 3); }
static void m_locator_offset_late(buf *b, const zlayout *l) { set_u64(b, l->locator + 8, l->locator - 10); }
static void m_locator_disks(buf *b, const zlayout *l) { set_u32(b, l->locator + 16, 3); }
static void m_zip64_sig(buf *b, const zlayout *l) { b->p[l->zip64_eocd] ^= 0xff; }
static void m_zip64_size(buf *b, const zlayout *l) { set_u64(b, l->zip64_eocd + 4, 45); }
static void m_zip64_count(buf *b, const zlayout *l)
{
    set_u64(b, l->zip64_eocd + 24, 4), set_u64(b, l->zip64_eocd + 32, 4);
}
static void m_zip64_count_huge(buf *b, const zlayout *l)
{
    set_u64(b, l->zip64_eocd + 24, UINT64_MAX), set_u64(b, l->zip64_eocd + 32, UINT64_MAX);
    set_u16(b, l->eocd + 8, 0xffff), set_u16(b, l->eocd + 10, 0xffff);
}
static void m_zip64_disk_count(buf *b, const zlayout *l) { set_u64(b, l->zip64_eocd + 24, 2); }
static void m_zip64_cd_offset(buf *b, const zlayout *l)
{
    set_u64(b, l->zip64_eocd + 48, UINT64_MAX - 10);
    set_u32(b, l->eocd + 16, 0xffffffff);
}
static void m_zip64_cd_size(buf *b, const zlayout *l)
{
    set_u64(b, l->zip64_eocd + 40, UINT64_MAX);
    set_u32(b, l->eocd + 12, 0xffffffff);
}
static void m_zip64_disagrees(buf *b, const zlayout *l) { set_u32(b, l->eocd + 16, (uint32_t)l->cd_offset + 46); }
static void m_central_sig(buf *b, const zlayout *l) { b->p[l->central[1] + 1] = 'X'; }
static void m_central_name_len(buf *b, const zlayout *l) { set_u16(b, l->central[2] + 28, 60000); }
static void m_central_extra_len(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 30, 2); }
static void m_central_offset_past(buf *b, const zlayout *l) { set_u32(b, l->central[1] + 42, (uint32_t)b->len + 100); }
static void m_central_offset_cd(buf *b, const zlayout *l)
{
    set_u32(b, l->central[1] + 42, (uint32_t)l->cd_offset - 10);
}
static void m_central_offset_other(buf *b, const zlayout *l) { set_u32(b, l->central[1] + 42, (uint32_t)l->local[2]); }
static void m_central_offset_data(buf *b, const zlayout *l) { set_u32(b, l->central[1] + 42, (uint32_t)l->data[1]); }
static void m_central_size_past(buf *b, const zlayout *l)
{
    set_u32(b, l->central[1] + 20, 4000), set_u32(b, l->central[1] + 24, 4000);
}
static void m_central_size_huge(buf *b, const zlayout *l)
{
    set_u32(b, l->central[1] + 20, 0xfffffff0u), set_u32(b, l->central[1] + 24, 0xfffffff0u);
}
static void m_central_sizes_differ(buf *b, const zlayout *l) { set_u32(b, l->central[1] + 20, 15); }
static void m_central_method(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 10, 12); }
static void m_central_encrypted(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 8, 0x0809); }
static void m_central_disk(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 34, 2); }
static void m_central_name_ctrl(buf *b, const zlayout *l)
{
    b->p[l->central[1] + 46 + 5] = '\n';
    b->p[l->local[1] + 30 + 5] = '\n';
}
static void m_central_name_empty(buf *b, const zlayout *l)
{
    /* the name's bytes become part of a (too short) extra area */
    set_u16(b, l->central[0] + 30, get_u32(b, l->central[0] + 28) & 0xffff);
    set_u16(b, l->central[0] + 28, 0);
}
/* 'arch/version' -> 'arch/data/0', one byte shorter: the spare byte becomes
 * the central header's comment and the local header's extra field. */
static void m_duplicate(buf *b, const zlayout *l)
{
    memcpy(b->p + l->central[2] + 46 + 5, "data/0", 6);
    set_u16(b, l->central[2] + 28, 11);
    set_u16(b, l->central[2] + 32, 1);
    memcpy(b->p + l->local[2] + 30 + 5, "data/0", 6);
    set_u16(b, l->local[2] + 26, 11);
    set_u16(b, l->local[2] + 28, 1);
}
static void m_local_sig(buf *b, const zlayout *l) { b->p[l->local[2] + 2] = 9; }
static void m_local_name(buf *b, const zlayout *l) { b->p[l->local[1] + 30 + 10] = '7'; }
static void m_local_name_len(buf *b, const zlayout *l) { set_u16(b, l->local[1] + 26, 10); }
static void m_local_extra_len(buf *b, const zlayout *l) { set_u16(b, l->local[2] + 28, 65535); }
/* entry 1's data (16 bytes) now starts 8 bytes before the central directory */
static void m_local_extra_into_data(buf *b, const zlayout *l)
{
    set_u16(b, l->local[1] + 28, (uint32_t)(l->cd_offset - l->local[1] - 30 - 11 - 8));
}
static void m_local_method(buf *b, const zlayout *l) { set_u16(b, l->local[0] + 8, 8); }
static void m_local_crc(buf *b, const zlayout *l) { b->p[l->local[1] + 14] ^= 1; }
static void m_local_size(buf *b, const zlayout *l) { set_u32(b, l->local[1] + 22, 17); }
static void m_zip64_extra_short(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 46 + 11 + 2, 16); }
static void m_zip64_extra_offset(buf *b, const zlayout *l) { set_u64(b, l->central[1] + 46 + 11 + 4 + 16, 1u << 20); }
static void m_extra_overrun(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 46 + 11 + 2, 30); }

/* Zip64 extra fields hold only the saturated values, in a fixed order. Entry
 * 1 ('arch/data/0', 16 bytes) of a ZIP64X archive, whose extra area is one
 * 24-byte zip64 field at EXTRA1. */
#define EXTRA1(l) ((l)->central[1] + 46 + 11)
static void zip64_offset_only(buf *b, const zlayout *l)
{
    set_u32(b, l->central[1] + 20, 16), set_u32(b, l->central[1] + 24, 16);
    set_u64(b, EXTRA1(l) + 4, l->local[1]);
}
static void m_zip64_disk_in_extra(buf *b, const zlayout *l)
{
    zip64_offset_only(b, l);
    set_u16(b, l->central[1] + 34, 0xffff);
    set_u32(b, EXTRA1(l) + 12, 0);
}
static void m_zip64_disk_3(buf *b, const zlayout *l)
{
    m_zip64_disk_in_extra(b, l);
    set_u32(b, EXTRA1(l) + 12, 3);
}
static void m_zip64_disk_lacking(buf *b, const zlayout *l) { set_u16(b, l->central[1] + 34, 0xffff); }
static void m_zip64_twice(buf *b, const zlayout *l)
{
    zip64_offset_only(b, l);
    set_u16(b, EXTRA1(l) + 2, 8);
    set_u16(b, EXTRA1(l) + 12, 1), set_u16(b, EXTRA1(l) + 14, 12);
}

static const zopts ZIP64X = {1, 1, -1};

static void test_zip64_extra_variants(void)
{
    mutator valid[] = {zip64_offset_only, m_zip64_disk_in_extra};
    for (size_t i = 0; i < 2; i++) {
        zlayout l;
        buf b = small_zip(&ZIP64X, &l);
        valid[i](&b, &l);
        ims_error err = {0};
        size_t count = 0;
        TEST_OK(open_zip_copy(b.p, b.len, ZIP_OPEN_VERIFY_CRC, &err, &count), err);
        TEST_CHECK(count == 3, "zip64 variant %zu: %zu entries", i, count);
        free(b.p);
    }
    refuse_mutation("zip64 extra: disk 3", &ZIP64X, m_zip64_disk_3, IMS_ERR_FORMAT, "'arch/data/0': starts on disk 3");
    refuse_mutation("zip64 extra: no disk", &ZIP64X, m_zip64_disk_lacking, IMS_ERR_FORMAT, "lacks the disk number");
    refuse_mutation("zip64 extra twice", &ZIP64X, m_zip64_twice, IMS_ERR_FORMAT, "two zip64 extra fields");
}

static void test_zip_rules(void)
{
    struct {
        const char *what;
        const zopts *o;
        mutator fn;
        ims_status want;
        const char *needle;
    } cases[] = {
        {"EOCD comment length", &PYTORCH, m_eocd_comment, IMS_ERR_FORMAT, "no end of central directory"},
        {"EOCD entry count", &PLAIN, m_eocd_count, IMS_ERR_FORMAT, "left in the central directory after its 2 entries"},
        {"EOCD entry count vs zip64", &PYTORCH, m_eocd_count, IMS_ERR_FORMAT, "= 2, the zip64 record says 3"},
        {"EOCD disk", &PLAIN, m_eocd_disk, IMS_ERR_FORMAT, "multi-disk"},
        {"EOCD disk (zip64)", &PYTORCH, m_eocd_disk, IMS_ERR_FORMAT, "disk number = 1"},
        {"EOCD entries on disk", &PLAIN, m_eocd_disk_count, IMS_ERR_FORMAT, "2 entries on this disk but 3"},
        {"EOCD central directory size", &PLAIN, m_eocd_cd_size, IMS_ERR_FORMAT, "does not end where the end records"},
        {"EOCD central directory offset", &PLAIN, m_eocd_cd_offset, IMS_ERR_FORMAT, "offset 2147483647"},
        {"EOCD saturated without zip64", &PLAIN, m_eocd_saturated, IMS_ERR_FORMAT, "no zip64 locator"},
        {"EOCD more entries than fit", &PLAIN, m_classic_count_big, IMS_ERR_FORMAT, "40 entries cannot fit"},
        {"zip64 locator offset", &PYTORCH, m_locator_offset, IMS_ERR_FORMAT, "zip64 locator: record offset"},
        {"zip64 locator offset late", &PYTORCH, m_locator_offset_late, IMS_ERR_FORMAT, "leaves no room"},
        {"zip64 locator disks", &PYTORCH, m_locator_disks, IMS_ERR_FORMAT, "multi-disk"},
        {"zip64 record signature", &PYTORCH, m_zip64_sig, IMS_ERR_FORMAT, "zip64 end record at offset"},
        {"zip64 record size", &PYTORCH, m_zip64_size, IMS_ERR_FORMAT, "size 45 does not reach the locator"},
        {"zip64 record count", &PYTORCH, m_zip64_count, IMS_ERR_FORMAT, "= 3, the zip64 record says 4"},
        {"zip64 record count huge", &PYTORCH, m_zip64_count_huge, IMS_ERR_FORMAT, "cannot fit"},
        {"zip64 entries on disk", &PYTORCH, m_zip64_disk_count, IMS_ERR_FORMAT, "2 entries on this disk but 3"},
        {"zip64 central directory offset", &PYTORCH, m_zip64_cd_offset, IMS_ERR_FORMAT, "does not end where"},
        {"zip64 central directory size", &PYTORCH, m_zip64_cd_size, IMS_ERR_FORMAT, "does not end where"},
        {"zip64 and EOCD disagree", &PYTORCH, m_zip64_disagrees, IMS_ERR_FORMAT, "central directory offset ="},
        {"central signature", &PYTORCH, m_central_sig, IMS_ERR_FORMAT, "entry 1 at offset"},
        {"central name length", &PYTORCH, m_central_name_len, IMS_ERR_FORMAT, "overrun the central directory"},
        {"central extra length", &PLAIN, m_central_extra_len, IMS_ERR_FORMAT, "2 stray bytes"},
        {"local offset past the end", &PYTORCH, m_central_offset_past, IMS_ERR_FORMAT, "local header offset"},
        {"local offset at the central directory", &PYTORCH, m_central_offset_cd, IMS_ERR_FORMAT, "leaves no room"},
        {"local offset at another entry", &PYTORCH, m_central_offset_other, IMS_ERR_FORMAT,
         "zip entry 'arch/data/0': local header name 'arch/version' differs from the central directory's "
         "'arch/data/0'"},
        {"local offset into data", &PYTORCH, m_central_offset_data, IMS_ERR_FORMAT, "bad signature"},
        {"entry size past the central directory", &PYTORCH, m_central_size_past, IMS_ERR_FORMAT,
         "'arch/data/0': 4000 bytes of data"},
        {"entry size huge", &PYTORCH, m_central_size_huge, IMS_ERR_FORMAT, "run past the central directory"},
        {"sizes differ", &PYTORCH, m_central_sizes_differ, IMS_ERR_FORMAT, "compressed size 15 differs"},
        {"unknown method", &PYTORCH, m_central_method, IMS_ERR_UNSUPPORTED, "'arch/data/0': compression method 12"},
        {"encrypted", &PYTORCH, m_central_encrypted, IMS_ERR_UNSUPPORTED, "encrypted"},
        {"entry on another disk", &PYTORCH, m_central_disk, IMS_ERR_FORMAT, "disk 2"},
        {"control character in a name", &PYTORCH, m_central_name_ctrl, IMS_ERR_FORMAT, "'arch/\\x0aata/0' has control"},
        {"empty name", &PLAIN, m_central_name_empty, IMS_ERR_FORMAT, "entry 0 has an empty name"},
        {"duplicate name", &PLAIN, m_duplicate, IMS_ERR_FORMAT, "'arch/data/0' appears twice"},
        {"local signature", &PYTORCH, m_local_sig, IMS_ERR_FORMAT, "'arch/version': local header at offset"},
        {"local name", &PYTORCH, m_local_name, IMS_ERR_FORMAT, "local header name 'arch/data/7' differs"},
        {"local name length", &PYTORCH, m_local_name_len, IMS_ERR_FORMAT, "local header name 'arch/data/' differs"},
        {"local extra length", &PYTORCH, m_local_extra_len, IMS_ERR_FORMAT, "runs into the central directory"},
        {"local extra into data", &PYTORCH, m_local_extra_into_data, IMS_ERR_FORMAT, "16 bytes of data at offset"},
        {"local method", &PYTORCH, m_local_method, IMS_ERR_FORMAT, "local header says method 8"},
        {"local CRC (no descriptor)", &PLAIN, m_local_crc, IMS_ERR_FORMAT, "local header CRC-32"},
        {"local size (no descriptor)", &PLAIN, m_local_size, IMS_ERR_FORMAT, "local header sizes 16/17"},
        {"zip64 extra too short", &ZIP64X, m_zip64_extra_short, IMS_ERR_FORMAT, "lacks the local header offset"},
        {"zip64 extra offset", &ZIP64X, m_zip64_extra_offset, IMS_ERR_FORMAT, "local header offset 1048576"},
        {"extra field overrun", &ZIP64X, m_extra_overrun, IMS_ERR_FORMAT, "overruns the 28-byte extra area"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        refuse_mutation(cases[i].what, cases[i].o, cases[i].fn, cases[i].want, cases[i].needle);

    /* A deflated entry, compressed by zlib as any zip tool would. */
    zsrc s[2] = {{"arch/data.pkl", payload, 10}, {"arch/data/0", payload, 36}};
    zopts o = {1, 0, 1};
    zlayout l;
    buf b = build_zip(s, 2, &o, &l);
    expect_zip_refused("deflate", &b, IMS_ERR_UNSUPPORTED,
                       "'arch/data/0': compression method 8 (deflate) is not supported");
    free(b.p);

    /* Overlapping entries: entry 1's data holds a second local header for
     * 'arch/b', and the central directory points into it. */
    unsigned char inner[64];
    buf h = {0};
    put_u32(&h, 0x04034b50);
    put_u16(&h, 20), put_u16(&h, 0), put_u16(&h, 0), put_u32(&h, 0);
    put_u32(&h, (uint32_t)crc32(0, payload, 4)), put_u32(&h, 4), put_u32(&h, 4);
    put_u16(&h, 6), put_u16(&h, 0);
    test_buf_put(&h, "arch/b", 6);
    test_buf_put(&h, payload, 4);
    memcpy(inner, h.p, h.len);
    zsrc s2[3] = {{"arch/data.pkl", payload, 10}, {"arch/a", inner, h.len}, {"arch/b", payload, 4}};
    b = build_zip(s2, 3, &PLAIN, &l);
    set_u32(&b, l.central[2] + 42, (uint32_t)l.data[1]);
    expect_zip_refused("overlapping entries", &b, IMS_ERR_FORMAT, "zip entry 'arch/a' (bytes");
    free(b.p);
    free(h.p);

    /* CRCs: imsi_zip_open does not check them unless asked; imsi_zip_entry_verify does. */
    b = small_zip(&PYTORCH, &l);
    b.p[l.data[1] + 3] ^= 0x20;
    ims_error err = {0};
    TEST_OK(open_zip_copy(b.p, b.len, 0, &err, NULL), err);
    ims_status st = open_zip_copy(b.p, b.len, ZIP_OPEN_VERIFY_CRC, &err, NULL);
    check_refusal("corrupted data, verified", st, &err, IMS_ERR_CHECKSUM,
                  "zip entry 'arch/data/0': CRC-32 of its 16 bytes");
    free(b.p);

    /* An empty archive is a valid zip. */
    buf e = {0};
    put_u32(&e, 0x06054b50);
    put_u32(&e, 0), put_u32(&e, 0), put_u32(&e, 0), put_u32(&e, 0), put_u16(&e, 0);
    size_t count = 99;
    TEST_OK(open_zip_copy(e.p, e.len, 0, &err, &count), err);
    TEST_CHECK(count == 0, "empty archive: %zu entries", count);
    expect_ckpt_refused("empty archive", &e, IMS_ERR_FORMAT, "no entries");
    /* with a comment */
    set_u16(&e, 20, 3);
    test_buf_put(&e, "PK\5", 3);
    TEST_OK(open_zip_copy(e.p, e.len, 0, &err, &count), err);
    free(e.p);
}

/* ---- Hostile archives: the checkpoint layer --------------------------------------------- */

static void test_checkpoint_rules(void)
{
    buf f = read_fixture("dtypes.pt");
    zsrc base[MAX_ENTRIES], s[MAX_ENTRIES];
    size_t base_n = entries_of(&f, base), n;
    zlayout l;
    buf b;
#define RESET() (memcpy(s, base, sizeof base), n = base_n)
#define REFUSE(what, want, needle)                                                                                     \
    do {                                                                                                               \
        b = build_zip(s, n, &PYTORCH, &l);                                                                             \
        expect_ckpt_refused(what, &b, want, needle);                                                                   \
        free(b.p);                                                                                                     \
    } while (0)

    RESET();
    remove_src(s, &n, find_src(s, n, "/data.pkl"));
    REFUSE("missing data.pkl", IMS_ERR_FORMAT, "no entry 'dtypes/data.pkl'");

    RESET();
    remove_src(s, &n, find_src(s, n, "/data/3"));
    REFUSE("missing storage", IMS_ERR_FORMAT, "tensor 'bf16': storage entry 'dtypes/data/3' is not in the archive");

    RESET();
    find_src(s, n, "/data/0")->size -= 4;
    REFUSE("short storage", IMS_ERR_FORMAT,
           "tensor 'f32': storage '0' holds 56 bytes, but the pickle says 15 float32 elements (60 bytes)");

    RESET();
    static unsigned char longer[256];
    zsrc *s0 = find_src(s, n, "/data/0");
    memcpy(longer, s0->data, s0->size);
    s0->data = longer, s0->size += 4;
    REFUSE("long storage", IMS_ERR_FORMAT, "holds 64 bytes, but the pickle says 15 float32 elements (60 bytes)");

    static const char *const bad_orders[] = {"middle", "Little", "little\n", "", "big "};
    for (size_t i = 0; i < sizeof bad_orders / sizeof *bad_orders; i++) {
        RESET();
        zsrc *bo = find_src(s, n, "/byteorder");
        bo->data = (const unsigned char *)bad_orders[i], bo->size = strlen(bad_orders[i]);
        REFUSE("bad byteorder", IMS_ERR_FORMAT, "'dtypes/byteorder': byte order is neither");
    }

    RESET();
    remove_src(s, &n, find_src(s, n, "/byteorder"));
    b = build_zip(s, n, &PYTORCH, &l);
    ckpt *c = NULL;
    ims_error err = {0};
    TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
    if (c) {
        check_expected("dtypes", c, 0); /* absent byteorder = little */
        imsi_ckpt_free(c);
    }
    free(b.p);

    RESET();
    /* Trailing bytes after the pickle: one more byte in data.pkl. */
    static unsigned char pkl[1 << 14];
    zsrc *p = find_src(s, n, "/data.pkl");
    TEST_CHECK(p->size < sizeof pkl - 1, "data.pkl fits");
    memcpy(pkl, p->data, p->size);
    pkl[p->size] = '.';
    p->data = pkl, p->size++;
    REFUSE("trailing bytes after the pickle", IMS_ERR_FORMAT, "trailing bytes");

    RESET();
    snprintf(s[3].name, sizeof s[3].name, "other/byteorder");
    REFUSE("entry outside the folder", IMS_ERR_FORMAT,
           "entry 'other/byteorder' is outside the archive's folder 'dtypes'");

    RESET();
    snprintf(s[0].name, sizeof s[0].name, "data.pkl");
    REFUSE("first entry without a folder", IMS_ERR_FORMAT, "first entry 'data.pkl' is not inside a top-level folder");

    RESET();
    snprintf(s[0].name, sizeof s[0].name, "/data.pkl");
    REFUSE("first entry with an empty folder", IMS_ERR_FORMAT, "is not inside a top-level folder");

    /* Corrupted bytes: caught by the CRC of data.pkl and of a storage. */
    RESET();
    b = build_zip(s, n, &PYTORCH, &l);
    b.p[l.data[0] + 20] ^= 1;
    expect_ckpt_refused("corrupted data.pkl", &b, IMS_ERR_CHECKSUM, "zip entry 'dtypes/data.pkl': CRC-32");
    free(b.p);
    b = build_zip(s, n, &PYTORCH, &l);
    size_t k = (size_t)(find_src(s, n, "/data/2") - s);
    b.p[l.data[k] + 1] ^= 1;
    expect_ckpt_refused("corrupted storage", &b, IMS_ERR_CHECKSUM, "tensor 'f16': zip entry 'dtypes/data/2': CRC-32");
    free(b.p);

    /* Storage entries need not be in key order, and unknown entries are ignored. */
    RESET();
    zsrc tmp = s[4];
    s[4] = s[n - 2];
    s[n - 2] = tmp;
    snprintf(s[n].name, sizeof s[n].name, "dtypes/extra/notes.txt");
    s[n].data = payload, s[n].size = 5;
    n++;
    b = build_zip(s, n, &PYTORCH, &l);
    TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
    if (c) {
        check_expected("dtypes", c, 0);
        imsi_ckpt_free(c);
    }
    free(b.p);
#undef RESET
#undef REFUSE
    free(f.p);
}

/* ---- Hand-written pickles ------------------------------------------------------------------ */

/* A state_dict pickle as torch.save writes it (protocol 2): an OrderedDict
 * filled by SETITEMS; each tensor _rebuild_tensor_v2((storage persistent id),
 * offset, size, stride, False, OrderedDict()). */
typedef struct pk_tensor {
    const char *name, *storage_type, *key;
    int64_t numel, offset;
    int ndim;
    int64_t shape[4], stride[4];
} pk_tensor;

static void pk_str(buf *b, const char *str)
{
    test_buf_put(b, "X", 1);
    put_u32(b, (uint32_t)strlen(str));
    test_buf_put(b, str, strlen(str));
}

static void pk_int(buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        unsigned char op[2] = {'K', (unsigned char)v};
        test_buf_put(b, op, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        test_buf_put(b, "J", 1);
        put_u32(b, (uint32_t)v);
    } else {
        test_buf_put(b, "\x8a\x08", 2); /* LONG1, 8 bytes */
        put_u64(b, (uint64_t)v);
    }
}

static void pk_global(buf *b, const char *module, const char *name)
{
    test_buf_put(b, "c", 1);
    test_buf_put(b, module, strlen(module));
    test_buf_put(b, "\n", 1);
    test_buf_put(b, name, strlen(name));
    test_buf_put(b, "\n", 1);
}

static buf make_pickle(const pk_tensor *t, size_t n)
{
    buf b = {0};
    test_buf_put(&b, "\x80\x02", 2);
    pk_global(&b, "collections", "OrderedDict");
    test_buf_put(&b, ")R(", 3);
    for (size_t i = 0; i < n; i++) {
        pk_str(&b, t[i].name);
        pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
        test_buf_put(&b, "((", 2);
        pk_str(&b, "storage");
        pk_global(&b, "torch", t[i].storage_type);
        pk_str(&b, t[i].key);
        pk_str(&b, "cpu");
        pk_int(&b, t[i].numel);
        test_buf_put(&b, "tQ", 2);
        pk_int(&b, t[i].offset);
        test_buf_put(&b, "(", 1);
        for (int d = 0; d < t[i].ndim; d++)
            pk_int(&b, t[i].shape[d]);
        test_buf_put(&b, "t(", 2);
        for (int d = 0; d < t[i].ndim; d++)
            pk_int(&b, t[i].stride[d]);
        test_buf_put(&b, "t\x89", 2);
        pk_global(&b, "collections", "OrderedDict");
        test_buf_put(&b, ")RtR", 4);
    }
    test_buf_put(&b, "u.", 2);
    return b;
}

/* An archive 'hand/' with the pickle, byteorder and storages data/0, data/1. */
static buf hand_zip(const pk_tensor *t, size_t n, const char *byteorder, const unsigned char *s0, size_t n0,
                    const unsigned char *s1, size_t n1)
{
    buf pkl = make_pickle(t, n);
    zsrc src[4] = {{"hand/data.pkl", pkl.p, pkl.len},
                   {"hand/byteorder", (const unsigned char *)byteorder, strlen(byteorder)},
                   {"hand/data/0", s0, n0},
                   {"hand/data/1", s1, n1}};
    zlayout l;
    buf b = build_zip(src, 4, &PYTORCH, &l);
    free(pkl.p);
    return b;
}

static void test_hand_pickles(void)
{
    /* storage 0: six float32 (little-endian) 0.5, 1.5, ..., 5.5; storage 1: the same, big-endian */
    unsigned char le[24], be[24];
    for (int i = 0; i < 6; i++) {
        float v = 0.5f + (float)i;
        uint32_t u;
        memcpy(&u, &v, 4);
        for (int k = 0; k < 4; k++)
            le[4 * i + k] = (unsigned char)(u >> 8 * k), be[4 * i + 3 - k] = (unsigned char)(u >> 8 * k);
    }
    ims_error err = {0};
    ckpt *c = NULL;

    /* Views: two tensors share storage 0 at offsets 1 and 2, one transposed. */
    pk_tensor views[] = {
        {"a", "FloatStorage", "0", 6, 1, 1, {3}, {1}},
        {"b", "FloatStorage", "0", 6, 2, 2, {2, 2}, {1, 2}},
        {"c", "FloatStorage", "1", 6, 0, 0, {0}, {0}},
    };
    buf b = hand_zip(views, 3, "little", le, 24, le, 24);
    TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
    if (c && c->count == 3) {
        double v[4];
        imsi_ckpt_tensor_read_f64(&c->tensors[0], v);
        TEST_CHECK(v[0] == 1.5 && v[1] == 2.5 && v[2] == 3.5, "view a: %g %g %g", v[0], v[1], v[2]);
        imsi_ckpt_tensor_read_f64(&c->tensors[1], v); /* (2, 2) strides (1, 2) from offset 2: [[2.5, 4.5], [3.5, 5.5]] */
        TEST_CHECK(v[0] == 2.5 && v[1] == 4.5 && v[2] == 3.5 && v[3] == 5.5, "view b: %g %g %g %g", v[0], v[1], v[2],
                   v[3]);
        TEST_CHECK(c->tensors[0].storage == c->tensors[1].storage, "a and b share one storage");
        TEST_CHECK(c->tensors[2].ndim == 0 && c->tensors[2].storage != c->tensors[0].storage, "c: 0-d, storage 1");
    }
    imsi_ckpt_free(c);
    free(b.p);

    /* byteorder "big": the storages are big-endian */
    b = hand_zip(views, 3, "big", be, 24, be, 24);
    TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
    if (c && c->count == 3) {
        double v[4];
        imsi_ckpt_tensor_read_f64(&c->tensors[1], v);
        TEST_CHECK(v[0] == 2.5 && v[1] == 4.5 && v[2] == 3.5 && v[3] == 5.5, "big-endian view b: %g %g %g %g", v[0],
                   v[1], v[2], v[3]);
        TEST_CHECK(c->tensors[0].big_endian && c->tensors[2].big_endian, "big_endian set");
    }
    imsi_ckpt_free(c);
    free(b.p);

    /* An empty state_dict is a valid checkpoint with no tensors. */
    b = hand_zip(NULL, 0, "little", le, 24, le, 24);
    TEST_OK(imsi_ckpt_open_memory(b.p, b.len, &c, &err), err);
    TEST_CHECK(!c || c->count == 0, "empty state_dict");
    imsi_ckpt_free(c);
    free(b.p);

    struct {
        const char *what;
        pk_tensor t[2];
        size_t n;
        const char *needle;
    } cases[] = {
        {"one storage as two dtypes",
         {{"a", "FloatStorage", "0", 6, 0, 1, {6}, {1}}, {"b", "IntStorage", "0", 6, 0, 1, {6}, {1}}},
         2,
         "6 int32 elements"}, /* the unpickler or torch_zip.c may refuse it first: either names both */
        {"one storage as two sizes",
         {{"a", "FloatStorage", "0", 6, 0, 1, {6}, {1}}, {"b", "DoubleStorage", "0", 3, 0, 1, {3}, {1}}},
         2,
         "3 float64 elements"},
        {"storage numel too large", {{"a", "FloatStorage", "0", 7, 0, 1, {6}, {1}}}, 1,
         "tensor 'a': storage '0' holds 24 bytes, but the pickle says 7 float32 elements (28 bytes)"},
        {"storage numel overflows", {{"a", "LongStorage", "0", INT64_C(1) << 62, 0, 1, {3}, {1}}}, 1,
         "holds 24 bytes, but the pickle says 4611686018427387904 int64 elements (over 2^64 bytes)"},
        {"view past the storage", {{"a", "FloatStorage", "0", 6, 5, 1, {2}, {1}}}, 1,
         "tensor 'a': reaches element 6 of a storage of 6"},
        {"strided view past the storage", {{"a", "FloatStorage", "1", 6, 0, 2, {2, 3}, {3, 2}}}, 1,
         "tensor 'a': reaches element 7"},
        {"unknown storage key", {{"a", "FloatStorage", "../0", 6, 0, 1, {6}, {1}}}, 1,
         "tensor 'a': storage entry 'hand/data/../0' is not in the archive"},
        {"duplicate tensor name",
         {{"a", "FloatStorage", "0", 6, 0, 1, {6}, {1}}, {"a", "FloatStorage", "1", 6, 0, 1, {6}, {1}}},
         2,
         "'a'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        b = hand_zip(cases[i].t, cases[i].n, "little", le, 24, le, 24);
        expect_ckpt_refused(cases[i].what, &b, IMS_ERR_FORMAT, cases[i].needle);
        free(b.p);
    }
}

/* ---- Random corruption --------------------------------------------------------------------- */

static void test_random_corruption(void)
{
    uint64_t rng = 20240601;
    const char *fx[] = {"dtypes.pt", "views.pt", "module.pt", "big_endian.pt"};
    for (int k = 0; k < 4; k++) {
        buf f = read_fixture(fx[k]);
        if (!f.len)
            continue;
        buf m = {0};
        test_buf_put(&m, f.p, f.len);
        for (int iter = 0; iter < 1500; iter++) {
            memcpy(m.p, f.p, f.len);
            int flips = 1 + (int)(test_rand_u64(&rng) % 4);
            for (int j = 0; j < flips; j++) {
                size_t at = (size_t)(test_rand_u64(&rng) % f.len);
                uint64_t r = test_rand_u64(&rng);
                m.p[at] = r & 1 ? (unsigned char)(r >> 8) : (unsigned char)(m.p[at] ^ (1u << (r >> 8) % 8));
            }
            ims_error err = {0};
            ims_status st = read_ckpt_copy(m.p, f.len, &err, NULL);
            TEST_CHECK(st == IMS_OK || (err.msg[0] && !strchr(err.msg, '\n')), "corruption %d: message '%s'", iter,
                       err.msg);
        }
        free(m.p);
        free(f.p);
    }
}

int main(int argc, char **argv)
{
    snprintf(fixture_dir, sizeof fixture_dir, "%s", test_fixture_dir(argc, argv));
    test_fixtures();
    test_rebuilt_layouts();
    test_truncation();
    test_zip_rules();
    test_zip64_extra_variants();
    test_checkpoint_rules();
    test_hand_pickles();
    test_random_corruption();
    return test_finish();
}
