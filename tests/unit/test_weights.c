/* test_weights.c: the weight file (.isw): writer/reader round trip, and one
 * malformed file per validation rule of docs/FORMAT.md.
 *
 * Files are built here by a small encoder written from the specification, not
 * from the writer, so a round trip also checks that the writer emits exactly
 * the bytes the specification describes.
 */
#include "test.h"

#include "io/weights_format.h"
#include "weights_tools/weights_writer.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- A byte-level encoder, from docs/FORMAT.md ------------------------------------ */

typedef test_buf buf;

static void put_u32(buf *b, uint32_t v)
{
    unsigned char t[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    test_buf_put(b, t, 4);
}

static void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void put_str(buf *b, const char *s, size_t len)
{
    put_u32(b, (uint32_t)len);
    test_buf_put(b, s, len);
}

static void meta_i64(buf *b, const char *key, int64_t v)
{
    put_str(b, key, strlen(key));
    put_u32(b, IMS_META_I64);
    put_u64(b, (uint64_t)v);
}

static void meta_string(buf *b, const char *key, const char *v)
{
    put_str(b, key, strlen(key));
    put_u32(b, IMS_META_STRING);
    put_str(b, v, strlen(v));
}

static void tensor_entry(buf *b, const char *name, uint32_t dtype, uint32_t ndim, const uint64_t *shape,
                         uint64_t offset, uint64_t nbytes, uint32_t crc)
{
    put_str(b, name, strlen(name));
    put_u32(b, dtype);
    put_u32(b, ndim);
    for (uint32_t i = 0; i < ndim; i++)
        put_u64(b, shape[i]);
    put_u64(b, offset);
    put_u64(b, nbytes);
    put_u32(b, crc);
}

typedef struct file {
    unsigned char *p; /* aligned to 65536, so any legal alignment holds */
    size_t size;
} file;

static void set_u32(file *f, size_t off, uint32_t v) { isw_store_u32(f->p + off, v); }
static void set_u64(file *f, size_t off, uint64_t v) { isw_store_u64(f->p + off, v); }

static void refresh_header_crc(file *f)
{
    set_u32(f, ISW_OFF_HEADER_CRC, (uint32_t)crc32(0, f->p, ISW_OFF_HEADER_CRC));
}

/* Header + metadata + directory + zero padding + data, with correct CRCs. */
static file assemble(const buf *meta, uint64_t meta_count, const buf *dir, uint64_t tensor_count,
                     const void *data, size_t data_len, uint32_t alignment)
{
    size_t dir_off = 128 + meta->len, dir_end = dir_off + dir->len;
    size_t data_off = (dir_end + alignment - 1) / alignment * alignment;
    file f = {aligned_alloc(65536, (data_off + data_len + 65535) / 65536 * 65536), data_off + data_len};
    memset(f.p, 0, f.size);
    memcpy(f.p, "\x89ISW\r\n\x1a\n", 8);
    set_u32(&f, 8, 1);
    set_u32(&f, 12, 0x01020304);
    set_u32(&f, 16, 128);
    set_u32(&f, 20, alignment);
    set_u64(&f, 24, f.size);
    set_u64(&f, 32, meta_count);
    set_u64(&f, 40, 128);
    set_u64(&f, 48, meta->len);
    set_u64(&f, 56, tensor_count);
    set_u64(&f, 64, dir_off);
    set_u64(&f, 72, dir->len);
    set_u64(&f, 80, data_off);
    set_u64(&f, 88, data_len);
    if (meta->len)
        memcpy(f.p + 128, meta->p, meta->len);
    if (dir->len)
        memcpy(f.p + dir_off, dir->p, dir->len);
    if (data_len)
        memcpy(f.p + data_off, data, data_len);
    set_u32(&f, 96, (uint32_t)crc32(0, f.p + 128, (uInt)(meta->len + dir->len)));
    refresh_header_crc(&f);
    return f;
}

/* ---- The valid base file ------------------------------------------------------------ */

static unsigned char data_pattern[1024];

static uint32_t crc_of(size_t off, size_t n) { return (uint32_t)crc32(0, data_pattern + off, (uInt)n); }

/* metadata: arch = "test", n = 7; tensors: w f32 (2, 3) at 0, b f16 (3) at 256. */
static void base_sections(buf *meta, buf *dir)
{
    meta_string(meta, "arch", "test");
    meta_i64(meta, "n", 7);
    tensor_entry(dir, "w", IMS_DTYPE_F32, 2, (uint64_t[]){2, 3}, 0, 24, crc_of(0, 24));
    tensor_entry(dir, "b", IMS_DTYPE_F16, 1, (uint64_t[]){3}, 256, 6, crc_of(256, 6));
}

static file base_file(void)
{
    buf meta = {0}, dir = {0};
    base_sections(&meta, &dir);
    file f = assemble(&meta, 2, &dir, 2, data_pattern, 512, 256);
    free(meta.p);
    free(dir.p);
    return f;
}

/* Opens f and expects `status` with `needle` in the message. */
static void expect_reject_flags(const char *rule, file f, unsigned flags, ims_status status, const char *needle)
{
    ims_weights *w = NULL;
    ims_error err = {0};
    ims_status st = ims_weights_open_memory(f.p, f.size, flags, &w, &err);
    TEST_CHECK(st == status, "rule '%s': got %s (%s), expected %s", rule, ims_status_name(st), err.msg,
               ims_status_name(status));
    TEST_CHECK(w == NULL, "rule '%s': no handle on failure", rule);
    TEST_CHECK(strstr(err.msg, needle) != NULL, "rule '%s': message '%s' does not name '%s'", rule, err.msg, needle);
    TEST_CHECK(strchr(err.msg, '\n') == NULL, "rule '%s': message is one line", rule);
    ims_weights_close(w);
    free(f.p);
}

static void expect_reject(const char *rule, file f, ims_status status, const char *needle)
{
    expect_reject_flags(rule, f, 0, status, needle);
}

/* A file whose sections are given; everything else valid. */
static file with_sections(buf *meta, uint64_t meta_count, buf *dir, uint64_t tensor_count)
{
    file f = assemble(meta, meta_count, dir, tensor_count, data_pattern, 512, 256);
    free(meta->p);
    free(dir->p);
    *meta = (buf){0};
    *dir = (buf){0};
    return f;
}

/* ---- Rules: the header ---------------------------------------------------------------- */

static void test_header_rules(void)
{
    file f = base_file();
    f.size = 100;
    expect_reject("short file", f, IMS_ERR_FORMAT, "shorter than the 128-byte header");

    f = base_file();
    f.p[1] = 'X';
    expect_reject("magic", f, IMS_ERR_FORMAT, "magic");

    f = base_file();
    set_u32(&f, ISW_OFF_BYTE_ORDER, 0x04030201);
    refresh_header_crc(&f);
    expect_reject("byte order", f, IMS_ERR_FORMAT, "byte_order");

    f = base_file();
    set_u32(&f, ISW_OFF_VERSION, 2);
    refresh_header_crc(&f);
    expect_reject("version", f, IMS_ERR_UNSUPPORTED, "version is 2");

    f = base_file();
    set_u32(&f, ISW_OFF_HEADER_SIZE, 256);
    refresh_header_crc(&f);
    expect_reject("header size", f, IMS_ERR_FORMAT, "header_size is 256");

    f = base_file();
    f.p[ISW_OFF_FILE_SIZE] ^= 1; /* no CRC refresh */
    expect_reject("header crc", f, IMS_ERR_CHECKSUM, "header_crc32");

    f = base_file();
    set_u32(&f, ISW_OFF_FLAGS, 1);
    refresh_header_crc(&f);
    expect_reject("flags", f, IMS_ERR_FORMAT, "flags");

    f = base_file();
    f.p[ISW_OFF_RESERVED + 5] = 1;
    refresh_header_crc(&f);
    expect_reject("reserved", f, IMS_ERR_FORMAT, "reserved header byte 109");

    static const uint32_t bad_alignments[] = {0, 32, 100, 131072};
    for (size_t i = 0; i < sizeof bad_alignments / sizeof *bad_alignments; i++) {
        f = base_file();
        set_u32(&f, ISW_OFF_ALIGNMENT, bad_alignments[i]);
        refresh_header_crc(&f);
        expect_reject("alignment", f, IMS_ERR_FORMAT, "alignment is");
    }

    f = base_file();
    f.size -= 1;
    expect_reject("truncated file", f, IMS_ERR_FORMAT, "file_size");

    f = base_file();
    set_u64(&f, ISW_OFF_FILE_SIZE, f.size + 1);
    refresh_header_crc(&f);
    expect_reject("file size", f, IMS_ERR_FORMAT, "(truncated?)");

    f = base_file();
    set_u64(&f, ISW_OFF_METADATA_OFFSET, 136);
    refresh_header_crc(&f);
    expect_reject("metadata offset", f, IMS_ERR_FORMAT, "metadata_offset");

    f = base_file();
    set_u64(&f, ISW_OFF_METADATA_SIZE, UINT64_MAX - 64);
    refresh_header_crc(&f);
    expect_reject("metadata size overflow", f, IMS_ERR_FORMAT, "metadata_size");

    f = base_file();
    set_u64(&f, ISW_OFF_DIRECTORY_OFFSET, isw_load_u64(f.p + ISW_OFF_DIRECTORY_OFFSET) + 1);
    refresh_header_crc(&f);
    expect_reject("directory offset", f, IMS_ERR_FORMAT, "directory_offset");

    f = base_file();
    set_u64(&f, ISW_OFF_DIRECTORY_SIZE, UINT64_MAX);
    refresh_header_crc(&f);
    expect_reject("directory size overflow", f, IMS_ERR_FORMAT, "directory_size");

    f = base_file();
    set_u64(&f, ISW_OFF_DATA_OFFSET, isw_load_u64(f.p + ISW_OFF_DATA_OFFSET) + 256);
    refresh_header_crc(&f);
    expect_reject("data offset", f, IMS_ERR_FORMAT, "data_offset");

    f = base_file();
    set_u64(&f, ISW_OFF_DATA_SIZE, 511);
    refresh_header_crc(&f);
    expect_reject("data size", f, IMS_ERR_FORMAT, "data_size");

    f = base_file();
    f.p[isw_load_u64(f.p + ISW_OFF_DATA_OFFSET) - 1] = 7;
    expect_reject("padding", f, IMS_ERR_FORMAT, "padding byte");

    f = base_file();
    set_u64(&f, ISW_OFF_METADATA_COUNT, 1000000);
    refresh_header_crc(&f);
    expect_reject("metadata count bound", f, IMS_ERR_FORMAT, "metadata_count 1000000 cannot fit");

    f = base_file();
    set_u64(&f, ISW_OFF_TENSOR_COUNT, UINT64_MAX);
    refresh_header_crc(&f);
    expect_reject("tensor count bound", f, IMS_ERR_FORMAT, "tensor_count");

    f = base_file();
    f.p[130] ^= 0x20; /* inside the metadata: index CRC no longer matches */
    expect_reject("index crc", f, IMS_ERR_CHECKSUM, "index_crc32");
}

/* ---- Rules: metadata --------------------------------------------------------------------- */

static void test_metadata_rules(void)
{
    buf meta = {0}, dir = {0};
    char long_key[300];
    memset(long_key, 'k', sizeof long_key);

    put_str(&meta, "", 0), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("empty key", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "metadata entry 0: key is empty");

    put_str(&meta, long_key, 257), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("long key", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "length 257 exceeds 256");

    put_str(&meta, "a\xff", 2), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("key utf-8", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "UTF-8");

    put_str(&meta, "a\0b", 3), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("key NUL", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "NUL");

    put_str(&meta, "a\nb", 3), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("key control character", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT,
                  "control character 0x0a at byte 1");

    put_str(&meta, "\xed\xa0\x80", 3), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("key surrogate", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "UTF-8");

    put_str(&meta, "\xc0\xaf", 2), put_u32(&meta, IMS_META_I64), put_u64(&meta, 1);
    expect_reject("key overlong", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "UTF-8");

    put_u32(&meta, 4000), test_buf_put(&meta, "kkkkkkkkkkkkkkkkk", 17);
    expect_reject("key past section", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "key runs past");

    put_str(&meta, "k", 1), put_u32(&meta, 7), put_u64(&meta, 1);
    expect_reject("unknown type", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "type is 7");

    put_str(&meta, "k", 1), put_u32(&meta, 0), put_u64(&meta, 1);
    expect_reject("type zero", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "type is 0");

    put_str(&meta, "kkkkkkkk", 8), put_u32(&meta, IMS_META_I64), test_buf_put(&meta, "1234", 4);
    expect_reject("value past section", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "value runs past");

    put_str(&meta, "k", 1), put_u32(&meta, IMS_META_STRING), put_u32(&meta, 100), test_buf_put(&meta, "abcdefgh", 8);
    expect_reject("string past section", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "length runs past");

    put_str(&meta, "k", 1), put_u32(&meta, IMS_META_STRING), put_str(&meta, "abcdefg\xc3", 8);
    expect_reject("string utf-8", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "not valid UTF-8");

    put_str(&meta, "k", 1), put_u32(&meta, IMS_META_I64_ARRAY), put_u64(&meta, 1ull << 61);
    expect_reject("array count overflow", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "array count");

    put_str(&meta, "k", 1), put_u32(&meta, IMS_META_F64_ARRAY), put_u64(&meta, 3), put_u64(&meta, 1), put_u64(&meta, 2);
    expect_reject("array past section", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "array count 3 runs past");

    put_str(&meta, "k", 1), put_u32(&meta, IMS_META_STRING_ARRAY), put_u64(&meta, 1ull << 40);
    expect_reject("string array count", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "string count");

    put_str(&meta, "k", 1), put_u32(&meta, IMS_META_STRING_ARRAY), put_u64(&meta, 2), put_str(&meta, "a", 1),
        put_u32(&meta, 9), test_buf_put(&meta, "bb", 2);
    expect_reject("string array element", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "string 1");

    meta_i64(&meta, "k", 1), test_buf_put(&meta, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 18);
    expect_reject("trailing metadata", with_sections(&meta, 1, &dir, 0), IMS_ERR_FORMAT, "18 bytes left in the metadata");

    meta_i64(&meta, "k", 1);
    expect_reject("count past section", with_sections(&meta, 2, &dir, 0), IMS_ERR_FORMAT, "cannot fit");

    meta_i64(&meta, "k", 1), meta_i64(&meta, "j", 1), meta_i64(&meta, "k", 2);
    expect_reject("duplicate key", with_sections(&meta, 3, &dir, 0), IMS_ERR_FORMAT,
                  "duplicate metadata key 'k' (entries 0 and 2)");
}

/* ---- Rules: the tensor directory ------------------------------------------------------------ */

static void test_tensor_rules(void)
{
    buf meta = {0}, dir = {0};
    char long_name[1100];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[1025] = '\0';
    uint64_t s23[] = {2, 3};

    tensor_entry(&dir, "", IMS_DTYPE_F32, 2, s23, 0, 24, crc_of(0, 24));
    expect_reject("empty name", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "tensor 0: name is empty");

    tensor_entry(&dir, long_name, IMS_DTYPE_F32, 2, s23, 0, 24, crc_of(0, 24));
    expect_reject("long name", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "length 1025 exceeds 1024");

    tensor_entry(&dir, "bad\x80", IMS_DTYPE_F32, 2, s23, 0, 24, crc_of(0, 24));
    expect_reject("name utf-8", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "UTF-8");

    tensor_entry(&dir, "tab\there", IMS_DTYPE_F32, 2, s23, 0, 24, crc_of(0, 24));
    expect_reject("name control character", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "control character 0x09");

    put_u32(&dir, 2000), test_buf_put(&dir, "t", 1);
    tensor_entry(&dir, "t", IMS_DTYPE_F32, 2, s23, 0, 24, 0);
    expect_reject("name past directory", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "name runs past");

    tensor_entry(&dir, "t", 9, 2, s23, 0, 24, crc_of(0, 24));
    expect_reject("dtype", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "tensor 0 ('t'): dtype is 9");

    tensor_entry(&dir, "t", IMS_DTYPE_F32, 5, (uint64_t[]){1, 1, 1, 1, 1}, 0, 4, crc_of(0, 4));
    expect_reject("ndim", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "ndim is 5");

    tensor_entry(&dir, "t", IMS_DTYPE_F32, 2, (uint64_t[]){2, 0}, 0, 0, crc_of(0, 0));
    expect_reject("zero dim", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "shape[1] is 0");

    tensor_entry(&dir, "t", IMS_DTYPE_U8, 1, (uint64_t[]){(1ull << 40) + 1}, 0, 0, 0);
    expect_reject("huge dim", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "shape[0] is 1099511627777");

    tensor_entry(&dir, "t", IMS_DTYPE_F32, 3, (uint64_t[]){1ull << 30, 1ull << 30, 1ull << 10}, 0, 0, 0);
    expect_reject("shape product overflow", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "overflows at shape[2]");

    put_str(&dir, "t", 1), put_u32(&dir, IMS_DTYPE_F32), put_u32(&dir, 2), put_u64(&dir, 2), put_u64(&dir, 3), put_u64(&dir, 0),
        test_buf_put(&dir, "1234", 4);
    expect_reject("shape past directory", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "run past the directory");

    tensor_entry(&dir, "t", IMS_DTYPE_F32, 2, s23, 0, 25, crc_of(0, 25));
    expect_reject("nbytes", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "nbytes is 25, but 6 elements of f32 take 24");

    tensor_entry(&dir, "t", IMS_DTYPE_F32, 2, s23, 64, 24, crc_of(64, 24));
    expect_reject("offset alignment", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "offset 64 is not a multiple of the alignment 256");

    tensor_entry(&dir, "t", IMS_DTYPE_U8, 1, (uint64_t[]){300}, 256, 300, 0);
    expect_reject("past data", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "run past the data section (512 bytes)");

    tensor_entry(&dir, "t", IMS_DTYPE_U8, 1, (uint64_t[]){512}, UINT64_MAX - 255, 512, 0);
    expect_reject("offset overflow", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "run past the data section");

    tensor_entry(&dir, "a", IMS_DTYPE_U8, 1, (uint64_t[]){300}, 0, 300, crc_of(0, 300));
    tensor_entry(&dir, "b", IMS_DTYPE_U8, 1, (uint64_t[]){10}, 256, 10, crc_of(256, 10));
    expect_reject("overlap", with_sections(&meta, 0, &dir, 2), IMS_ERR_FORMAT, "tensors 'a' and 'b' overlap");

    tensor_entry(&dir, "a", IMS_DTYPE_U8, 1, (uint64_t[]){10}, 0, 10, crc_of(0, 10));
    tensor_entry(&dir, "a", IMS_DTYPE_U8, 1, (uint64_t[]){10}, 256, 10, crc_of(256, 10));
    expect_reject("duplicate name", with_sections(&meta, 0, &dir, 2), IMS_ERR_FORMAT, "duplicate tensor name 'a'");

    tensor_entry(&dir, "a", IMS_DTYPE_U8, 1, (uint64_t[]){10}, 0, 10, crc_of(0, 10));
    test_buf_put(&dir, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 35);
    expect_reject("trailing directory", with_sections(&meta, 0, &dir, 1), IMS_ERR_FORMAT, "35 bytes left in the directory");

    /* Data CRC: accepted without the verify flag, rejected with it. */
    tensor_entry(&dir, "a", IMS_DTYPE_U8, 1, (uint64_t[]){10}, 0, 10, crc_of(0, 10) ^ 1);
    file f = with_sections(&meta, 0, &dir, 1);
    ims_weights *w = NULL;
    ims_error err = {0};
    TEST_OK(ims_weights_open_memory(f.p, f.size, 0, &w, &err), err);
    TEST_CHECK(w && ims_weights_verify_data(w, &err) == IMS_ERR_CHECKSUM, "verify_data finds the bad crc");
    TEST_CHECK(strstr(err.msg, "tensor 0 ('a'): crc32") != NULL, "message: %s", err.msg);
    ims_weights_close(w);
    expect_reject_flags("data crc", f, IMS_WEIGHTS_VERIFY_DATA, IMS_ERR_CHECKSUM, "crc32 is");

    /* A misaligned buffer is the caller's mistake, not the file's. */
    f = base_file();
    unsigned char *shifted = aligned_alloc(65536, 65536 * 2);
    memcpy(shifted + 64, f.p, f.size);
    free(f.p);
    ims_weights *w2 = NULL;
    TEST_CHECK(ims_weights_open_memory(shifted + 64, f.size, 0, &w2, &err) == IMS_ERR_ARGUMENT, "misaligned buffer");
    TEST_CHECK(strstr(err.msg, "alignment 256") != NULL, "message: %s", err.msg);
    free(shifted);
}

/* ---- Valid files --------------------------------------------------------------------------- */

static void test_base_file_reads(void)
{
    file f = base_file();
    ims_weights *w = NULL;
    ims_error err = {0};
    TEST_OK(ims_weights_open_memory(f.p, f.size, IMS_WEIGHTS_VERIFY_DATA, &w, &err), err);
    if (!w)
        return;
    int64_t n = 0;
    ims_str arch = {0};
    TEST_OK(ims_weights_get_i64(w, "n", &n, &err), err);
    TEST_CHECK(n == 7, "n = %lld", (long long)n);
    TEST_OK(ims_weights_get_string(w, "arch", &arch, &err), err);
    TEST_CHECK(arch.len == 4 && memcmp(arch.ptr, "test", 4) == 0, "arch");
    TEST_CHECK(ims_weights_get_f64(w, "n", &(double){0}, &err) == IMS_ERR_FORMAT, "wrong type is an error");
    TEST_CHECK(strstr(err.msg, "'n' is i64, expected f64") != NULL, "message: %s", err.msg);
    TEST_CHECK(ims_weights_get_i64(w, "missing", &n, &err) == IMS_ERR_NOT_FOUND, "missing key");
    const ims_weight_tensor *t = NULL;
    TEST_OK(ims_weights_tensor_expect(w, "w", IMS_DTYPE_F32, 2, (int64_t[]){2, 3}, &t, &err), err);
    TEST_CHECK(t && memcmp(t->data, data_pattern, 24) == 0, "tensor w data");
    TEST_CHECK(ims_weights_tensor_expect(w, "w", IMS_DTYPE_F32, 2, (int64_t[]){3, 2}, &t, &err) == IMS_ERR_FORMAT,
               "wrong shape is an error");
    TEST_CHECK(strstr(err.msg, "'w' is (2, 3) f32, expected (3, 2) f32") != NULL, "message: %s", err.msg);
    t = ims_weights_tensor_find(w, "b");
    TEST_CHECK(t && t->dtype == IMS_DTYPE_F16 && t->ndim == 1 && t->shape[0] == 3 && t->shape[1] == 1, "tensor b");
    TEST_CHECK(t && (uintptr_t)t->data % 256 == 0, "tensor data aligned");
    TEST_CHECK(ims_weights_tensor_find(w, "c") == NULL, "absent tensor");
    ims_weights_close(w);
    free(f.p);

    /* The smallest entries: 13-byte metadata (1-byte key, empty string). */
    buf small_meta = {0}, no_dir = {0};
    meta_string(&small_meta, "a", "");
    meta_string(&small_meta, "b", "");
    meta_string(&small_meta, "c", "x");
    f = with_sections(&small_meta, 3, &no_dir, 0);
    TEST_OK(ims_weights_open_memory(f.p, f.size, 0, &w, &err), err);
    ims_weights_close(w);
    free(f.p);

    /* An empty file (no metadata, no tensors) is valid. */
    buf meta = {0}, dir = {0};
    f = with_sections(&meta, 0, &dir, 0);
    TEST_OK(ims_weights_open_memory(f.p, f.size, IMS_WEIGHTS_VERIFY_DATA, &w, &err), err);
    TEST_CHECK(w && ims_weights_tensor_count(w) == 0 && ims_weights_meta_count(w) == 0, "empty file");
    ims_weights_close(w);
    free(f.p);
}

/* The writer's bytes equal this file's encoder's, and everything reads back. */
static void test_writer_round_trip(void)
{
    ims_error err = {0};
    imsi_weights_writer *wr = NULL;
    TEST_OK(imsi_weights_writer_create(&wr, &err), err);
    const int64_t ints[3] = {-1, 0, INT64_MAX};
    const double reals[2] = {0.485, -1e300};
    const char *labels[3] = {"tench", "", "caf\xc3\xa9"};
    float weights[6];
    uint16_t halves[3];
    int32_t ids[2] = {-5, 1 << 30};
    unsigned char bytes[5] = {1, 2, 3, 4, 255};
    float scalar = 3.5f;
    for (int i = 0; i < 6; i++)
        weights[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 3; i++)
        halves[i] = ims_f32_to_f16((float)i + 0.5f);
    TEST_OK(imsi_weights_writer_add_string(wr, "architecture", "test", &err), err);
    TEST_OK(imsi_weights_writer_add_i64(wr, "layers", -42, &err), err);
    TEST_OK(imsi_weights_writer_add_f64(wr, "eps", 1e-3, &err), err);
    TEST_OK(imsi_weights_writer_add_i64_array(wr, "ints", ints, 3, &err), err);
    TEST_OK(imsi_weights_writer_add_f64_array(wr, "reals", reals, 2, &err), err);
    TEST_OK(imsi_weights_writer_add_string_array(wr, "labels", labels, 3, &err), err);
    TEST_OK(imsi_weights_writer_add_i64_array(wr, "empty", NULL, 0, &err), err);
    TEST_OK(imsi_weights_writer_add_tensor(wr, "fc.weight", IMS_DTYPE_F32, 2, (int64_t[]){2, 3}, weights, &err), err);
    TEST_OK(imsi_weights_writer_add_tensor(wr, "half", IMS_DTYPE_F16, 1, (int64_t[]){3}, halves, &err), err);
    TEST_OK(imsi_weights_writer_add_tensor(wr, "ids", IMS_DTYPE_I32, 1, (int64_t[]){2}, ids, &err), err);
    TEST_OK(imsi_weights_writer_add_tensor(wr, "bytes", IMS_DTYPE_U8, 4, (int64_t[]){1, 1, 5, 1}, bytes, &err), err);
    TEST_OK(imsi_weights_writer_add_tensor(wr, "scalar", IMS_DTYPE_F32, 0, NULL, &scalar, &err), err);

    /* What the writer must refuse. */
    TEST_CHECK(imsi_weights_writer_add_i64(wr, "layers", 1, &err) == IMS_ERR_ARGUMENT, "duplicate key");
    TEST_CHECK(imsi_weights_writer_add_i64(wr, "", 1, &err) == IMS_ERR_ARGUMENT, "empty key");
    TEST_CHECK(imsi_weights_writer_add_string(wr, "bad", "\xff", &err) == IMS_ERR_ARGUMENT, "bad utf-8 value");
    TEST_CHECK(imsi_weights_writer_add_tensor(wr, "half", IMS_DTYPE_F16, 1, (int64_t[]){3}, halves, &err) ==
                   IMS_ERR_ARGUMENT, "duplicate tensor");
    TEST_CHECK(imsi_weights_writer_add_tensor(wr, "z", IMS_DTYPE_F16, 1, (int64_t[]){0}, halves, &err) ==
                   IMS_ERR_ARGUMENT, "zero dim");
    TEST_CHECK(imsi_weights_writer_add_tensor(wr, "z", IMS_DTYPE_COUNT, 1, (int64_t[]){1}, halves, &err) ==
                   IMS_ERR_ARGUMENT, "bad dtype");
    TEST_CHECK(imsi_weights_writer_set_alignment(wr, 48, &err) == IMS_ERR_ARGUMENT, "bad alignment");

    unsigned char *mem = NULL;
    size_t size = 0;
    TEST_OK(imsi_weights_writer_write_memory(wr, &mem, &size, &err), err);

    /* The same file, encoded here from the specification. */
    buf meta = {0}, dir = {0};
    meta_string(&meta, "architecture", "test");
    meta_i64(&meta, "layers", -42);
    put_str(&meta, "eps", 3), put_u32(&meta, IMS_META_F64);
    uint64_t eps_bits;
    double eps = 1e-3;
    memcpy(&eps_bits, &eps, 8);
    put_u64(&meta, eps_bits);
    put_str(&meta, "ints", 4), put_u32(&meta, IMS_META_I64_ARRAY), put_u64(&meta, 3);
    for (int i = 0; i < 3; i++)
        put_u64(&meta, (uint64_t)ints[i]);
    put_str(&meta, "reals", 5), put_u32(&meta, IMS_META_F64_ARRAY), put_u64(&meta, 2);
    for (int i = 0; i < 2; i++) {
        uint64_t b;
        memcpy(&b, &reals[i], 8);
        put_u64(&meta, b);
    }
    put_str(&meta, "labels", 6), put_u32(&meta, IMS_META_STRING_ARRAY), put_u64(&meta, 3);
    for (int i = 0; i < 3; i++)
        put_str(&meta, labels[i], strlen(labels[i]));
    put_str(&meta, "empty", 5), put_u32(&meta, IMS_META_I64_ARRAY), put_u64(&meta, 0);
    unsigned char data[256 * 4 + 4] = {0};
    memcpy(data, weights, 24);
    memcpy(data + 256, halves, 6);
    memcpy(data + 512, ids, 8);
    memcpy(data + 768, bytes, 5);
    memcpy(data + 1024, &scalar, 4);
    tensor_entry(&dir, "fc.weight", 0, 2, (uint64_t[]){2, 3}, 0, 24, (uint32_t)crc32(0, data, 24));
    tensor_entry(&dir, "half", 1, 1, (uint64_t[]){3}, 256, 6, (uint32_t)crc32(0, data + 256, 6));
    tensor_entry(&dir, "ids", 2, 1, (uint64_t[]){2}, 512, 8, (uint32_t)crc32(0, data + 512, 8));
    tensor_entry(&dir, "bytes", 3, 4, (uint64_t[]){1, 1, 5, 1}, 768, 5, (uint32_t)crc32(0, data + 768, 5));
    tensor_entry(&dir, "scalar", 0, 0, NULL, 1024, 4, (uint32_t)crc32(0, data + 1024, 4));
    file expected = assemble(&meta, 7, &dir, 5, data, sizeof data, 256);
    free(meta.p);
    free(dir.p);
    TEST_CHECK(size == expected.size && memcmp(mem, expected.p, size) == 0,
               "writer output (%zu bytes) differs from the specification's encoding (%zu bytes)", size, expected.size);
    free(expected.p);

    /* Read it back from a file on disk. */
    const char *path = "test_weights_round_trip.isw";
    TEST_OK(imsi_weights_writer_write_file(wr, path, &err), err);
    ims_weights *w = NULL;
    TEST_OK(ims_weights_open(path, IMS_WEIGHTS_VERIFY_DATA, &w, &err), err);
    if (w) {
        TEST_CHECK(ims_weights_meta_count(w) == 7 && ims_weights_tensor_count(w) == 5, "counts");
        int64_t got_ints[3];
        double got_reals[2];
        TEST_OK(ims_weights_get_i64_array(w, "ints", got_ints, 3, &err), err);
        TEST_CHECK(memcmp(got_ints, ints, sizeof ints) == 0, "ints");
        TEST_OK(ims_weights_get_f64_array(w, "reals", got_reals, 2, &err), err);
        TEST_CHECK(memcmp(got_reals, reals, sizeof reals) == 0, "reals");
        TEST_CHECK(ims_weights_get_i64_array(w, "ints", got_ints, 2, &err) == IMS_ERR_FORMAT, "count mismatch");
        const ims_str *strs = NULL;
        size_t count = 0;
        TEST_OK(ims_weights_get_strings(w, "labels", &strs, &count, &err), err);
        TEST_CHECK(count == 3 && strs[1].len == 0 && strs[2].len == 5 && memcmp(strs[2].ptr, "caf\xc3\xa9", 5) == 0,
                   "labels");
        double e = 0;
        TEST_OK(ims_weights_get_f64(w, "eps", &e, &err), err);
        TEST_CHECK(e == 1e-3, "eps");
        const ims_meta *m = ims_weights_meta_at(w, 0);
        TEST_CHECK(m && m->key.len == 12 && memcmp(m->key.ptr, "architecture", 12) == 0, "file order kept");
        const ims_weight_tensor *t = ims_weights_tensor_find(w, "scalar");
        TEST_CHECK(t && t->ndim == 0 && t->nbytes == 4 && *(const float *)t->data == 3.5f, "scalar tensor");
        t = ims_weights_tensor_find(w, "ids");
        TEST_CHECK(t && memcmp(t->data, ids, 8) == 0, "i32 tensor");
        ims_weights_close(w);
    }
    unlink(path);
    free(mem);
    imsi_weights_writer_free(wr);
}

static void test_open_errors(void)
{
    ims_weights *w = NULL;
    ims_error err = {0};
    TEST_CHECK(ims_weights_open("/nonexistent/x.isw", 0, &w, &err) == IMS_ERR_IO, "missing file");
    TEST_CHECK(strstr(err.msg, "/nonexistent/x.isw") && strstr(err.msg, "No such file"), "message: %s", err.msg);
    TEST_CHECK(ims_weights_open(".", 0, &w, &err) == IMS_ERR_IO, "directory");
    TEST_CHECK(strstr(err.msg, "not a regular file") != NULL, "message: %s", err.msg);
    FILE *f = fopen("test_weights_empty.isw", "wb");
    fclose(f);
    TEST_CHECK(ims_weights_open("test_weights_empty.isw", 0, &w, &err) == IMS_ERR_FORMAT, "empty file");
    TEST_CHECK(strstr(err.msg, "file is 0 bytes") != NULL, "message: %s", err.msg);
    unlink("test_weights_empty.isw");
    file bad = base_file();
    bad.p[0] = 'P';
    f = fopen("test_weights_bad.isw", "wb");
    fwrite(bad.p, 1, bad.size, f);
    fclose(f);
    free(bad.p);
    TEST_CHECK(ims_weights_open("test_weights_bad.isw", 0, &w, &err) == IMS_ERR_FORMAT, "bad magic on disk");
    TEST_CHECK(strstr(err.msg, "weights file 'test_weights_bad.isw': magic is 50") == err.msg, "message: %s", err.msg);
    unlink("test_weights_bad.isw");
    TEST_CHECK(w == NULL, "no handle");
}

int main(void)
{
    uint64_t rng = 1234;
    for (size_t i = 0; i < sizeof data_pattern; i++)
        data_pattern[i] = (unsigned char)test_rand_u64(&rng);
    test_base_file_reads();
    test_header_rules();
    test_metadata_rules();
    test_tensor_rules();
    test_writer_round_trip();
    test_open_errors();
    return test_finish();
}
