/* zip_reader.c: the validating in-memory zip reader (zip_reader.h).
 *
 * Layout read here (PKWARE APPNOTE 6.3), all little-endian, from the end:
 *   [local header + name + extra + data (+ data descriptor)] per entry
 *   central directory: one 46-byte header + name + extra + comment per entry
 *   zip64 end of central directory record (56+ bytes)   } only in zip64
 *   zip64 end of central directory locator (20 bytes)   } archives
 *   end of central directory record (22 bytes + comment)
 * The central directory is the authority for names, sizes, CRCs and offsets;
 * every local header is cross-checked against it. The central directory must
 * end exactly where the end records begin, and every entry must lie before
 * the central directory, so no byte of the archive is read under two meanings.
 * Offsets and sizes are uint64_t and each sum is checked before it is formed.
 */
#include "zip_reader.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u

#define ZIP_LOCAL_SIZE 30
#define ZIP_CENTRAL_SIZE 46
#define ZIP_EOCD_SIZE 22
#define ZIP64_EOCD_SIZE 56
#define ZIP64_LOCATOR_SIZE 20
#define ZIP_COMMENT_MAX 65535

#define ZIP_METHOD_STORED 0
#define ZIP_EXTRA_ZIP64 0x0001

/* General purpose flags: encryption (bit 0), strong encryption (bit 6) and a
 * masked central directory (bit 13) all hide what we must read. Bit 3 means
 * the local header's CRC and sizes are deferred to a data descriptor. */
#define ZIP_FLAG_ENCRYPTED 0x0001u
#define ZIP_FLAG_DESCRIPTOR 0x0008u
#define ZIP_FLAG_STRONG 0x0040u
#define ZIP_FLAG_MASKED 0x2000u

#define ZIP_U16_MAX 0xffffu
#define ZIP_U32_MAX 0xffffffffu

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

typedef unsigned long long ull; /* for printf */

/* ---- CRC-32 -------------------------------------------------------------------------- */

/* zlib's crc32 takes a uInt length; feed it in 1 GiB pieces. */
static uint32_t crc32_of(const unsigned char *p, uint64_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

ims_status imsi_zip_entry_verify(const zip_entry *e, ims_error *err)
{
    uint32_t crc = crc32_of(e->data, e->size);
    if (crc != e->crc32)
        return ims_error_set(err, IMS_ERR_CHECKSUM,
                             "zip entry '%s': CRC-32 of its %llu bytes is 0x%08x, the central directory says 0x%08x",
                             e->name, (ull)e->size, (unsigned)crc, (unsigned)e->crc32);
    return IMS_OK;
}

/* ---- Names in messages ------------------------------------------------------------- */

/* Copies up to 64 bytes of a name that has not been validated into out, with
 * bytes outside printable ASCII as \xNN, so a message stays one printable line. */
static const char *quote_bytes(char out[300], const unsigned char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        unsigned char ch = p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
            out[o++] = (char)ch;
        } else {
            static const char hex[] = "0123456789abcdef";
            out[o++] = '\\', out[o++] = 'x', out[o++] = hex[ch >> 4], out[o++] = hex[ch & 15];
        }
    }
    if (n > 64)
        out[o++] = '.', out[o++] = '.', out[o++] = '.';
    out[o] = '\0';
    return out;
}

/* ---- End records ------------------------------------------------------------------- */

typedef struct zip_end {
    uint64_t count;      /* entries */
    uint64_t cd_offset;  /* first byte of the central directory */
    uint64_t cd_size;
    uint64_t end_start;  /* first byte of the end records (zip64 record or EOCD) */
} zip_end;

/* The EOCD is the last 22 bytes plus a comment of up to 65535 bytes; take the
 * last signature whose comment length reaches exactly to the end of the file. */
static ims_status find_eocd(const unsigned char *data, uint64_t size, uint64_t *pos, ims_error *err)
{
    if (size < ZIP_EOCD_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip: file of %llu bytes is too short for an end of central directory record",
                             (ull)size);
    uint64_t lowest = size - ZIP_EOCD_SIZE > ZIP_COMMENT_MAX ? size - ZIP_EOCD_SIZE - ZIP_COMMENT_MAX : 0;
    for (uint64_t p = size - ZIP_EOCD_SIZE + 1; p-- > lowest;) {
        if (rd32(data + p) == ZIP_EOCD_SIG && rd16(data + p + 20) == size - p - ZIP_EOCD_SIZE) {
            *pos = p;
            return IMS_OK;
        }
    }
    return ims_error_set(err, IMS_ERR_FORMAT,
                         "zip: no end of central directory record (PK\\5\\6 whose comment reaches the end) in the last %llu "
                         "bytes (truncated file?)",
                         (ull)(size - lowest));
}

/* A classic field must equal the zip64 value or be saturated (0xffff...). */
static ims_status agree(uint64_t classic, uint64_t saturated, uint64_t zip64, const char *field, ims_error *err)
{
    if (classic != saturated && classic != zip64)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip: end of central directory says %s = %llu, the zip64 record says %llu",
                             field, (ull)classic, (ull)zip64);
    return IMS_OK;
}

static ims_status read_zip64_end(const unsigned char *data, uint64_t locator, zip_end *end, const unsigned char *eocd,
                                 ims_error *err)
{
    const unsigned char *l = data + locator;
    uint32_t disk = rd32(l + 4), disks = rd32(l + 16);
    uint64_t rec = rd64(l + 8);
    if (disk != 0 || disks > 1)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip64 locator: multi-disk archive (record on disk %u of %u) is not supported",
                             (unsigned)disk, (unsigned)disks);
    if (rec > locator || locator - rec < ZIP64_EOCD_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip64 locator: record offset %llu leaves no room for a %d-byte zip64 record before the "
                             "locator at %llu",
                             (ull)rec, ZIP64_EOCD_SIZE, (ull)locator);
    const unsigned char *r = data + rec;
    if (rd32(r) != ZIP64_EOCD_SIG)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip64 end record at offset %llu: bad signature 0x%08x", (ull)rec,
                             (unsigned)rd32(r));
    /* The record's own size field counts the bytes after its first 12; the
     * record (with any extensible data) must end where the locator begins. */
    uint64_t rec_size = rd64(r + 4);
    if (rec_size != locator - rec - 12)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip64 end record at offset %llu: size %llu does not reach the locator at %llu",
                             (ull)rec, (ull)rec_size, (ull)locator);
    uint32_t rdisk = rd32(r + 16), rcd_disk = rd32(r + 20);
    uint64_t on_disk = rd64(r + 24), total = rd64(r + 32);
    if (rdisk != 0 || rcd_disk != 0)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip64 end record: disk %u, central directory on disk %u: multi-disk archives are unsupported",
                             (unsigned)rdisk, (unsigned)rcd_disk);
    if (on_disk != total)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip64 end record: %llu entries on this disk but %llu in total", (ull)on_disk, (ull)total);
    end->count = total;
    end->cd_size = rd64(r + 40);
    end->cd_offset = rd64(r + 48);
    end->end_start = rec;
    ims_status st;
    if ((st = agree(rd16(eocd + 4), ZIP_U16_MAX, 0, "disk number", err)) ||
        (st = agree(rd16(eocd + 6), ZIP_U16_MAX, 0, "central directory disk", err)) ||
        (st = agree(rd16(eocd + 8), ZIP_U16_MAX, total, "entries on this disk", err)) ||
        (st = agree(rd16(eocd + 10), ZIP_U16_MAX, total, "total entries", err)) ||
        (st = agree(rd32(eocd + 12), ZIP_U32_MAX, end->cd_size, "central directory size", err)) ||
        (st = agree(rd32(eocd + 16), ZIP_U32_MAX, end->cd_offset, "central directory offset", err)))
        return st;
    return IMS_OK;
}

static ims_status read_classic_end(const unsigned char *eocd, uint64_t eocd_pos, zip_end *end, ims_error *err)
{
    uint16_t disk = rd16(eocd + 4), cd_disk = rd16(eocd + 6), on_disk = rd16(eocd + 8), total = rd16(eocd + 10);
    uint32_t cd_size = rd32(eocd + 12), cd_offset = rd32(eocd + 16);
    if (on_disk == ZIP_U16_MAX || total == ZIP_U16_MAX || cd_size == ZIP_U32_MAX || cd_offset == ZIP_U32_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip: end of central directory defers to zip64 records (entries %u, size %u, offset %u), but "
                             "there is no zip64 locator",
                             (unsigned)total, (unsigned)cd_size, (unsigned)cd_offset);
    if (disk != 0 || cd_disk != 0)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip: disk %u, central directory on disk %u: multi-disk archives are not supported",
                             (unsigned)disk, (unsigned)cd_disk);
    if (on_disk != total)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip: %u entries on this disk but %u in total", (unsigned)on_disk,
                             (unsigned)total);
    end->count = total;
    end->cd_size = cd_size;
    end->cd_offset = cd_offset;
    end->end_start = eocd_pos;
    return IMS_OK;
}

static ims_status read_end(const unsigned char *data, uint64_t size, zip_end *end, ims_error *err)
{
    uint64_t eocd_pos = 0;
    ims_status st = find_eocd(data, size, &eocd_pos, err);
    if (st)
        return st;
    const unsigned char *eocd = data + eocd_pos;
    if (eocd_pos >= ZIP64_LOCATOR_SIZE && rd32(data + eocd_pos - ZIP64_LOCATOR_SIZE) == ZIP64_LOCATOR_SIG)
        st = read_zip64_end(data, eocd_pos - ZIP64_LOCATOR_SIZE, end, eocd, err);
    else
        st = read_classic_end(eocd, eocd_pos, end, err);
    if (st)
        return st;
    if (end->cd_offset > end->end_start || end->cd_size != end->end_start - end->cd_offset)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip: central directory at offset %llu of %llu bytes does not end where the end records begin "
                             "(offset %llu)",
                             (ull)end->cd_offset, (ull)end->cd_size, (ull)end->end_start);
    /* every central header takes at least 46 bytes: this bounds the allocation */
    if (end->count > end->cd_size / ZIP_CENTRAL_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip: %llu entries cannot fit in a central directory of %llu bytes",
                             (ull)end->count, (ull)end->cd_size);
    return IMS_OK;
}

/* ---- Central directory ------------------------------------------------------------- */

typedef struct zip_central {
    uint16_t flags, method;
    uint32_t crc;
    uint64_t csize, usize, local_offset;
    const unsigned char *name;
    size_t name_len;
} zip_central;

/* The zip64 extended information extra field holds, in this order, only the
 * values whose 32-bit (or 16-bit disk) central fields are saturated. */
static ims_status read_zip64_extra(const unsigned char *p, uint16_t len, zip_central *c, uint32_t *disk,
                                   const char *name, ims_error *err)
{
    uint64_t *vals[3] = {&c->usize, &c->csize, &c->local_offset};
    static const char *const fields[3] = {"uncompressed size", "compressed size", "local header offset"};
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        if (*vals[i] != ZIP_U32_MAX)
            continue;
        if (len - at < 8)
            return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': zip64 extra field of %u bytes lacks the %s", name,
                                 (unsigned)len, fields[i]);
        *vals[i] = rd64(p + at);
        at += 8;
    }
    if (*disk == ZIP_U16_MAX) {
        if (len - at < 4)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "zip entry '%s': zip64 extra field of %u bytes lacks the disk number", name, (unsigned)len);
        *disk = rd32(p + at);
    }
    return IMS_OK;
}

/* Walks the extra fields (id, length, data) that must tile the extra area. */
static ims_status read_extras(const unsigned char *p, uint16_t len, zip_central *c, uint32_t *disk,
                              const char *name, ims_error *err)
{
    int seen_zip64 = 0;
    uint32_t at = 0;
    while (at < len) {
        if (len - at < 4)
            return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': %u stray bytes at the end of the extra field", name,
                                 (unsigned)(len - at));
        uint16_t id = rd16(p + at), flen = rd16(p + at + 2);
        if (flen > len - at - 4)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "zip entry '%s': extra field 0x%04x of %u bytes overruns the %u-byte extra area",
                                 name, (unsigned)id, (unsigned)flen, (unsigned)len);
        if (id == ZIP_EXTRA_ZIP64) {
            if (seen_zip64++)
                return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': two zip64 extra fields", name);
            ims_status st = read_zip64_extra(p + at + 4, flen, c, disk, name, err);
            if (st)
                return st;
        }
        at += 4u + flen;
    }
    return IMS_OK;
}

static ims_status check_name(const unsigned char *name, size_t len, uint64_t index, ims_error *err)
{
    if (len == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip central directory entry %llu has an empty name", (ull)index);
    for (size_t i = 0; i < len; i++)
        if (name[i] < 0x20 || name[i] == 0x7f) {
            char q[300];
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "zip central directory entry %llu: name '%s' has control character 0x%02x at byte %zu",
                                 (ull)index, quote_bytes(q, name, len), (unsigned)name[i], i);
        }
    return IMS_OK;
}

/* Reads the central header at *pos (inside the central directory, which ends
 * at cd_end), fills c and e->name, and advances *pos past it. */
static ims_status read_central(const unsigned char *data, uint64_t *pos, uint64_t cd_end, uint64_t index,
                               zip_central *c, zip_entry *e, ims_error *err)
{
    uint64_t at = *pos;
    if (cd_end - at < ZIP_CENTRAL_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip central directory entry %llu at offset %llu: only %llu bytes left in the directory",
                             (ull)index, (ull)at, (ull)(cd_end - at));
    const unsigned char *h = data + at;
    if (rd32(h) != ZIP_CENTRAL_SIG)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip central directory entry %llu at offset %llu: bad signature 0x%08x",
                             (ull)index, (ull)at, (unsigned)rd32(h));
    uint16_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
    uint64_t var = (uint64_t)name_len + extra_len + comment_len;
    if (var > cd_end - at - ZIP_CENTRAL_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip central directory entry %llu at offset %llu: name, extra and comment (%u + %u + %u bytes) "
                             "overrun the central directory",
                             (ull)index, (ull)at, (unsigned)name_len, (unsigned)extra_len, (unsigned)comment_len);
    ims_status st = check_name(h + ZIP_CENTRAL_SIZE, name_len, index, err);
    if (st)
        return st;
    if (!(e->name = malloc((size_t)name_len + 1)))
        return ims_error_set(err, IMS_ERR_NOMEM, "zip: out of memory");
    memcpy(e->name, h + ZIP_CENTRAL_SIZE, name_len);
    e->name[name_len] = '\0';

    c->flags = rd16(h + 8);
    c->method = rd16(h + 10);
    c->crc = rd32(h + 16);
    c->csize = rd32(h + 20);
    c->usize = rd32(h + 24);
    c->local_offset = rd32(h + 42);
    c->name = h + ZIP_CENTRAL_SIZE;
    c->name_len = name_len;
    uint32_t disk = rd16(h + 34);
    if ((st = read_extras(h + ZIP_CENTRAL_SIZE + name_len, extra_len, c, &disk, e->name, err)))
        return st;
    if (disk != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': starts on disk %u: multi-disk archives are not supported",
                             e->name, (unsigned)disk);
    if (c->flags & (ZIP_FLAG_ENCRYPTED | ZIP_FLAG_STRONG | ZIP_FLAG_MASKED))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "zip entry '%s': encrypted (flags 0x%04x)", e->name,
                             (unsigned)c->flags);
    if (c->method != ZIP_METHOD_STORED)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                             "zip entry '%s': compression method %u%s is not supported; PyTorch stores entries uncompressed "
                             "(method 0)",
                             e->name, (unsigned)c->method, c->method == 8 ? " (deflate)" : "");
    if (c->csize != c->usize)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': stored, but compressed size %llu differs from uncompressed size %llu",
                             e->name, (ull)c->csize, (ull)c->usize);
    *pos = at + ZIP_CENTRAL_SIZE + var;
    return IMS_OK;
}

/* ---- Local headers ------------------------------------------------------------------- */

/* Checks the local header of an entry against its central header and sets
 * e->data. Local header and data must lie before the central directory. */
static ims_status check_local(const unsigned char *data, uint64_t cd_offset, const zip_central *c, zip_entry *e,
                              ims_error *err)
{
    uint64_t off = c->local_offset;
    if (off > cd_offset || cd_offset - off < ZIP_LOCAL_SIZE)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': local header offset %llu leaves no room for its %d bytes before the central "
                             "directory at %llu",
                             e->name, (ull)off, ZIP_LOCAL_SIZE, (ull)cd_offset);
    const unsigned char *h = data + off;
    if (rd32(h) != ZIP_LOCAL_SIG)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': local header at offset %llu has bad signature 0x%08x", e->name, (ull)off,
                             (unsigned)rd32(h));
    uint16_t name_len = rd16(h + 26), extra_len = rd16(h + 28);
    uint64_t data_off = off + ZIP_LOCAL_SIZE + name_len + extra_len; /* < 2^64: off < cd_offset <= size */
    if (data_off > cd_offset)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': local header at offset %llu with name and extra of %u + %u bytes runs into "
                             "the central directory at %llu",
                             e->name, (ull)off, (unsigned)name_len, (unsigned)extra_len, (ull)cd_offset);
    if (name_len != c->name_len || memcmp(h + ZIP_LOCAL_SIZE, c->name, name_len) != 0) {
        char q[300];
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': local header name '%s' differs from the central directory's '%s'",
                             e->name, quote_bytes(q, h + ZIP_LOCAL_SIZE, name_len), e->name);
    }
    uint16_t method = rd16(h + 8), flags = rd16(h + 6);
    if (method != c->method)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': local header says method %u, the central directory %u", e->name,
                             (unsigned)method, (unsigned)c->method);
    /* Without a data descriptor the local CRC and sizes are real: they must
     * agree (sizes may be 0xffffffff, deferring to a zip64 extra field). */
    if (!(flags & ZIP_FLAG_DESCRIPTOR)) {
        uint32_t crc = rd32(h + 14), csize = rd32(h + 18), usize = rd32(h + 22);
        if (crc != c->crc)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "zip entry '%s': local header CRC-32 0x%08x differs from the central directory's 0x%08x",
                                 e->name, (unsigned)crc, (unsigned)c->crc);
        if ((csize != ZIP_U32_MAX && csize != c->csize) || (usize != ZIP_U32_MAX && usize != c->usize))
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "zip entry '%s': local header sizes %u/%u differ from the central directory's %llu",
                                 e->name, (unsigned)csize, (unsigned)usize, (ull)c->usize);
    }
    if (c->usize > cd_offset - data_off)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "zip entry '%s': %llu bytes of data at offset %llu run past the central directory at %llu",
                             e->name, (ull)c->usize, (ull)data_off, (ull)cd_offset);
    e->data = data + data_off;
    e->size = c->usize;
    e->crc32 = c->crc;
    e->local_offset = off;
    return IMS_OK;
}

/* ---- Whole-archive checks ---------------------------------------------------------- */

static int by_name_cmp(const void *a, const void *b)
{
    return strcmp((*(zip_entry *const *)a)->name, (*(zip_entry *const *)b)->name);
}

static int by_offset_cmp(const void *a, const void *b)
{
    uint64_t x = (*(zip_entry *const *)a)->local_offset, y = (*(zip_entry *const *)b)->local_offset;
    return x < y ? -1 : x > y;
}

/* Sorts by_name and refuses duplicate names. */
static ims_status check_duplicates(zip_archive *z, ims_error *err)
{
    if (z->count == 0)
        return IMS_OK; /* by_name is NULL, which qsort must not see */
    for (size_t i = 0; i < z->count; i++)
        z->by_name[i] = &z->entries[i];
    qsort(z->by_name, z->count, sizeof *z->by_name, by_name_cmp);
    for (size_t i = 1; i < z->count; i++)
        if (strcmp(z->by_name[i - 1]->name, z->by_name[i]->name) == 0)
            return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s' appears twice in the central directory",
                                 z->by_name[i]->name);
    return IMS_OK;
}

/* Each entry owns [local header, end of data); no two may overlap. */
static ims_status check_overlaps(const zip_archive *z, const unsigned char *data, ims_error *err)
{
    if (z->count < 2)
        return IMS_OK;
    zip_entry **order = malloc(z->count * sizeof *order);
    if (!order)
        return ims_error_set(err, IMS_ERR_NOMEM, "zip: out of memory");
    for (size_t i = 0; i < z->count; i++)
        order[i] = &z->entries[i];
    qsort(order, z->count, sizeof *order, by_offset_cmp);
    ims_status st = IMS_OK;
    for (size_t i = 1; i < z->count && !st; i++) {
        const zip_entry *a = order[i - 1], *b = order[i];
        uint64_t a_end = (uint64_t)(a->data - data) + a->size;
        if (a_end > b->local_offset)
            st = ims_error_set(err, IMS_ERR_FORMAT,
                               "zip entry '%s' (bytes %llu..%llu) overlaps zip entry '%s' (local header at %llu)",
                               a->name, (ull)a->local_offset, (ull)a_end, b->name, (ull)b->local_offset);
    }
    free(order);
    return st;
}

static ims_status read_entries(const unsigned char *data, const zip_end *end, zip_archive *z, ims_error *err)
{
    uint64_t pos = end->cd_offset, cd_end = end->cd_offset + end->cd_size;
    for (uint64_t i = 0; i < end->count; i++) {
        zip_central c = {0};
        zip_entry *e = &z->entries[i];
        z->count = (size_t)i + 1; /* so that imsi_zip_close frees a name read before a failure */
        e->central_offset = pos;
        ims_status st = read_central(data, &pos, cd_end, i, &c, e, err);
        if (!st)
            st = check_local(data, end->cd_offset, &c, e, err);
        if (st)
            return st;
    }
    if (pos != cd_end)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip: %llu bytes left in the central directory after its %llu entries",
                             (ull)(cd_end - pos), (ull)end->count);
    return IMS_OK;
}

void imsi_zip_close(zip_archive *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->count; i++)
        free(z->entries[i].name);
    free(z->entries);
    free(z->by_name);
    memset(z, 0, sizeof *z);
}

ims_status imsi_zip_open(const unsigned char *data, size_t size, unsigned flags, zip_archive *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    zip_end end = {0};
    ims_status st = read_end(data, size, &end, err);
    if (st)
        return st;
    if (end.count > SIZE_MAX / sizeof(zip_entry))
        return ims_error_set(err, IMS_ERR_FORMAT, "zip: %llu entries is too many", (ull)end.count);
    zip_archive z = {0};
    if (end.count) {
        z.entries = calloc((size_t)end.count, sizeof *z.entries);
        z.by_name = calloc((size_t)end.count, sizeof *z.by_name);
        if (!z.entries || !z.by_name) {
            imsi_zip_close(&z);
            return ims_error_set(err, IMS_ERR_NOMEM, "zip: out of memory for %llu entries", (ull)end.count);
        }
    }
    st = read_entries(data, &end, &z, err);
    if (!st)
        st = check_duplicates(&z, err);
    if (!st)
        st = check_overlaps(&z, data, err);
    for (size_t i = 0; i < z.count && !st && (flags & ZIP_OPEN_VERIFY_CRC); i++)
        st = imsi_zip_entry_verify(&z.entries[i], err);
    if (st) {
        imsi_zip_close(&z);
        return st;
    }
    *out = z;
    return IMS_OK;
}

const zip_entry *imsi_zip_find(const zip_archive *z, const char *name)
{
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->by_name[mid]->name, name);
        if (c == 0)
            return z->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
