/* npz.c: the .npz reader: the zip that numpy.savez and savez_compressed
 * write (pytorch-fid's and clean-fid's statistics files are the latter),
 * members NAME.npy stored or deflated, zip64 fields where numpy forces them.
 *
 * The central directory is the truth: each entry's sizes, CRC and offset are
 * checked against the file before use, the local header must name the same
 * member, and an inflated member must be exactly its recorded size and CRC.
 * A member's uncompressed size is bounded by what deflate can reach from its
 * compressed bytes (1032:1), so a forged size cannot make us allocate more.
 */
#include "imgsearch.h"

#include "io/npy.h"

#include "core/error.h"
#include "core/file_map.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZIP_EOCD_SIZE 22
#define ZIP_CDIR_SIZE 46
#define ZIP_LOCAL_SIZE 30
#define ZIP_MAX_COMMENT 65535
#define ZIP64_LOCATOR_SIZE 20
#define ZIP64_EOCD_SIZE 56
#define DEFLATE_MAX_RATIO 1032 /* deflate's densest output: 258 bytes per 2 bits */
#define NPZ_NAME_MAX 256

typedef struct npz_entry {
    char name[NPZ_NAME_MAX]; /* without ".npy" */
    uint16_t method;         /* 0 stored, 8 deflated */
    uint32_t crc;
    uint64_t csize, usize, offset;
} npz_entry;

struct ims_npz {
    imsi_file_map map;
    npz_entry *entries;
    size_t count;
};

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The end-of-central-directory record (zip64 when its fields say so): where
 * the directory is and how many entries it has. */
static ims_status find_directory(const unsigned char *d, size_t size, uint64_t *cd_off, uint64_t *cd_size,
                                 uint64_t *count, ims_error *err)
{
    if (size < ZIP_EOCD_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: not a zip file (%zu bytes)", size);
    size_t lowest = size > ZIP_EOCD_SIZE + ZIP_MAX_COMMENT ? size - ZIP_EOCD_SIZE - ZIP_MAX_COMMENT : 0;
    size_t e = size - ZIP_EOCD_SIZE;
    while (memcmp(d + e, "PK\5\6", 4) != 0 || e + ZIP_EOCD_SIZE + le(d + e + 20, 2) != size) {
        if (e == lowest)
            return ims_error_set(err, IMS_ERR_FORMAT, "npz: not a zip file (no end of central directory)");
        e--;
    }
    if (le(d + e + 4, 2) != 0 || le(d + e + 6, 2) != 0 || le(d + e + 8, 2) != le(d + e + 10, 2))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npz: a zip split over several disks");
    *count = le(d + e + 10, 2), *cd_size = le(d + e + 12, 4), *cd_off = le(d + e + 16, 4);
    if (*count != 0xFFFF && *cd_size != 0xFFFFFFFF && *cd_off != 0xFFFFFFFF)
        return IMS_OK;
    /* zip64: the locator just before, then the zip64 record it points to */
    if (e < ZIP64_LOCATOR_SIZE || memcmp(d + e - ZIP64_LOCATOR_SIZE, "PK\6\7", 4) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: zip64 fields without a zip64 locator");
    uint64_t z = le(d + e - ZIP64_LOCATOR_SIZE + 8, 8);
    if (size < ZIP64_EOCD_SIZE || z > size - ZIP64_EOCD_SIZE || memcmp(d + z, "PK\6\6", 4) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: the zip64 end record is not at offset %llu",
                             (unsigned long long)z);
    *count = le(d + z + 32, 8), *cd_size = le(d + z + 40, 8), *cd_off = le(d + z + 48, 8);
    return IMS_OK;
}

/* The zip64 extra field (id 1) supplies, in order, each of usize, csize and
 * offset whose 32-bit field is 0xFFFFFFFF. */
static ims_status read_zip64_extra(const unsigned char *x, size_t n, npz_entry *e, ims_error *err)
{
    uint64_t *want[3] = {&e->usize, &e->csize, &e->offset};
    while (n >= 4) {
        size_t id = le(x, 2), len = le(x + 2, 2);
        if (len > n - 4)
            return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': an extra field runs past its entry", e->name);
        if (id == 1) {
            size_t at = 0;
            for (int i = 0; i < 3; i++) {
                if (*want[i] != 0xFFFFFFFF)
                    continue;
                if (at + 8 > len)
                    return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': zip64 extra field too short", e->name);
                *want[i] = le(x + 4 + at, 8);
                at += 8;
            }
        }
        x += 4 + len, n -= 4 + len;
    }
    return IMS_OK;
}

/* One central-directory entry at d[*at], checked against the file's size. */
static ims_status read_entry(const unsigned char *d, size_t size, size_t end, size_t *at, npz_entry *e,
                             ims_error *err)
{
    const unsigned char *p = d + *at;
    if (end - *at < ZIP_CDIR_SIZE || memcmp(p, "PK\1\2", 4) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: bad central directory entry at offset %zu", *at);
    size_t nlen = le(p + 28, 2), xlen = le(p + 30, 2), clen = le(p + 32, 2);
    if (ZIP_CDIR_SIZE + nlen + xlen + clen > end - *at)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: central directory entry at offset %zu runs past it", *at);
    if (le(p + 8, 2) & 1)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npz: an encrypted member");
    const char *name = (const char *)p + ZIP_CDIR_SIZE;
    if (nlen < 5 || nlen - 4 >= NPZ_NAME_MAX || memcmp(name + nlen - 4, ".npy", 4) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: a member whose name is not NAME.npy (%zu bytes)", nlen);
    /* printable ASCII only: names go into one-line messages */
    for (size_t i = 0; i < nlen; i++)
        if (name[i] < 0x20 || name[i] > 0x7e)
            return ims_error_set(err, IMS_ERR_FORMAT, "npz: a member name with byte 0x%02x", (unsigned char)name[i]);
    memcpy(e->name, name, nlen - 4);
    e->name[nlen - 4] = '\0';
    e->method = (uint16_t)le(p + 10, 2);
    e->crc = (uint32_t)le(p + 16, 4);
    e->csize = le(p + 20, 4), e->usize = le(p + 24, 4), e->offset = le(p + 42, 4);
    ims_status st = read_zip64_extra(p + ZIP_CDIR_SIZE + nlen, xlen, e, err);
    if (st)
        return st;
    if (e->method != 0 && e->method != 8)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "npz: '%s': compression method %u (stored or deflated only)",
                             e->name, e->method);
    if (e->offset > size || e->csize > size - e->offset)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': its data runs past the end of the file", e->name);
    if (e->method == 0 ? e->usize != e->csize : e->usize / DEFLATE_MAX_RATIO > e->csize + 1)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': %llu bytes cannot come from %llu compressed ones",
                             e->name, (unsigned long long)e->usize, (unsigned long long)e->csize);
    *at += ZIP_CDIR_SIZE + nlen + xlen + clen;
    return IMS_OK;
}

static ims_status npz_index(ims_npz *z, ims_error *err)
{
    const unsigned char *d = z->map.data;
    size_t size = z->map.size;
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    ims_status st = find_directory(d, size, &cd_off, &cd_size, &count, err);
    if (st)
        return st;
    if (cd_off > size || cd_size > size - cd_off)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: the central directory runs past the end of the file");
    if (count > cd_size / ZIP_CDIR_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: %llu entries cannot fit in a %llu-byte directory",
                             (unsigned long long)count, (unsigned long long)cd_size);
    z->entries = calloc(count ? (size_t)count : 1, sizeof *z->entries);
    if (!z->entries)
        return ims_error_set(err, IMS_ERR_NOMEM, "npz: out of memory for %llu entries", (unsigned long long)count);
    size_t at = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (; z->count < count; z->count++) {
        st = read_entry(d, size, end, &at, &z->entries[z->count], err);
        if (st)
            return st;
        for (size_t i = 0; i < z->count; i++)
            if (!strcmp(z->entries[i].name, z->entries[z->count].name))
                return ims_error_set(err, IMS_ERR_FORMAT, "npz: member '%s' appears twice", z->entries[i].name);
    }
    return IMS_OK;
}

static ims_status npz_new(imsi_file_map map, ims_npz **out, ims_error *err)
{
    *out = NULL;
    ims_npz *z = calloc(1, sizeof *z);
    if (!z) {
        imsi_file_map_close(&map);
        return ims_error_set(err, IMS_ERR_NOMEM, "npz: out of memory");
    }
    z->map = map;
    ims_status st = npz_index(z, err);
    if (st) {
        ims_npz_close(z);
        return st;
    }
    *out = z;
    return IMS_OK;
}

ims_status ims_npz_open(const char *path, ims_npz **out, ims_error *err)
{
    *out = NULL;
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (!st)
        st = npz_new(map, out, err);
    return st ? imsi_error_prefix(err, st, "%s", path) : IMS_OK;
}

ims_status ims_npz_parse(const void *buf, size_t size, ims_npz **out, ims_error *err)
{
    imsi_file_map map = {buf, size, NULL};
    return npz_new(map, out, err);
}

void ims_npz_close(ims_npz *z)
{
    if (!z)
        return;
    free(z->entries);
    imsi_file_map_close(&z->map);
    free(z);
}

size_t ims_npz_count(const ims_npz *z) { return z->count; }

const char *ims_npz_name(const ims_npz *z, size_t i) { return i < z->count ? z->entries[i].name : NULL; }

/* A deflated member into dst, which must come out exactly usize bytes from
 * exactly csize compressed ones. */
static ims_status inflate_member(const npz_entry *e, const unsigned char *src, unsigned char *dst, ims_error *err)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK)
        return ims_error_set(err, IMS_ERR_NOMEM, "npz: '%s': cannot start inflate", e->name);
    const uInt step = 1u << 30; /* zlib counts in uInt */
    uint64_t in_left = e->csize, out_left = e->usize;
    int rc;
    do {
        if (!s.avail_in && in_left) {
            s.next_in = (unsigned char *)src, s.avail_in = in_left > step ? step : (uInt)in_left;
            src += s.avail_in, in_left -= s.avail_in;
        }
        if (!s.avail_out && out_left) {
            s.next_out = dst, s.avail_out = out_left > step ? step : (uInt)out_left;
            dst += s.avail_out, out_left -= s.avail_out;
        }
        rc = inflate(&s, Z_NO_FLUSH);
    } while (rc == Z_OK);
    int whole = rc == Z_STREAM_END && !out_left && !s.avail_out && !in_left && !s.avail_in;
    inflateEnd(&s);
    if (!whole)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': the deflated data is corrupt or not %llu bytes",
                             e->name, (unsigned long long)e->usize);
    return IMS_OK;
}

ims_status ims_npz_get(const ims_npz *z, const char *name, ims_npy **out, ims_error *err)
{
    *out = NULL;
    const npz_entry *e = NULL;
    for (size_t i = 0; i < z->count && !e; i++)
        if (!strcmp(z->entries[i].name, name))
            e = &z->entries[i];
    if (!e)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "npz: no member '%s'", name);
    const unsigned char *d = z->map.data;
    size_t size = z->map.size;
    if (size < ZIP_LOCAL_SIZE || e->offset > size - ZIP_LOCAL_SIZE || memcmp(d + e->offset, "PK\3\4", 4) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': no local header at offset %llu", name,
                             (unsigned long long)e->offset);
    const unsigned char *lh = d + e->offset;
    size_t nlen = le(lh + 26, 2), xlen = le(lh + 28, 2);
    uint64_t data = e->offset + ZIP_LOCAL_SIZE + nlen + xlen;
    if (nlen != strlen(e->name) + 4 || data > size || memcmp(lh + ZIP_LOCAL_SIZE, e->name, nlen - 4) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': the local header names another member", name);
    if (e->csize > size - data)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': its data runs past the end of the file", name);
    if (e->usize > SIZE_MAX - 1)
        return ims_error_set(err, IMS_ERR_FORMAT, "npz: '%s': too large", name);
    unsigned char *buf = malloc(e->usize ? (size_t)e->usize : 1);
    if (!buf)
        return ims_error_set(err, IMS_ERR_NOMEM, "npz: '%s': out of memory for %llu bytes", name,
                             (unsigned long long)e->usize);
    ims_status st = IMS_OK;
    if (e->method == 0)
        memcpy(buf, d + data, (size_t)e->usize);
    else
        st = inflate_member(e, d + data, buf, err);
    if (!st && e->crc != (uint32_t)crc32_z(0L, buf, (z_size_t)e->usize))
        st = ims_error_set(err, IMS_ERR_CHECKSUM, "npz: '%s': CRC-32 does not match", name);
    if (st) {
        free(buf);
        return st;
    }
    st = imsi_npy_parse_owned(buf, (size_t)e->usize, out, err);
    return st ? imsi_error_prefix(err, st, "npz member '%s'", name) : IMS_OK;
}
