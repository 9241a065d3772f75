/* image/decode_util.c: what every image decoder shares (image/decode_formats.h):
 * the pixel limits (Pillow's decompression-bomb check, made before any
 * allocation that depends on the size), the output buffer, EXIF and XMP
 * orientation as Pillow reads them, and exif_transpose's rotations.
 */
#include "image/decode_formats.h"

#include "core/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A count as people write it: exact below a million, else 1e10 or 1.5e8. */
static const char *short_count(uint64_t v, char buf[32])
{
    if (v < 1000000) {
        snprintf(buf, 32, "%llu", (unsigned long long)v);
        return buf;
    }
    int exp10 = 0;
    double m = (double)v;
    while (m >= 10)
        m /= 10, exp10++;
    char mant[16];
    snprintf(mant, sizeof mant, "%.3g", m); /* 9.996 rounds to "10": rare, still readable */
    snprintf(buf, 32, "%.8se%d", mant, exp10 % 100);
    return buf;
}

/* ---- The shared decode budget ---- */

struct ims_decode_budget {
    pthread_mutex_t mutex;
    pthread_cond_t freed;
    uint64_t total, used;
};

ims_status ims_decode_budget_create(uint64_t bytes, ims_decode_budget **out, ims_error *err)
{
    *out = NULL;
    if (bytes == 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "a decode budget of 0 bytes");
    ims_decode_budget *b = calloc(1, sizeof *b);
    if (!b)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&b->mutex, NULL);
    pthread_cond_init(&b->freed, NULL);
    b->total = bytes;
    *out = b;
    return IMS_OK;
}

void ims_decode_budget_free(ims_decode_budget *b)
{
    if (!b)
        return;
    pthread_cond_destroy(&b->freed);
    pthread_mutex_destroy(&b->mutex);
    free(b);
}

static void budget_reserve(ims_decode_budget *b, uint64_t bytes)
{
    pthread_mutex_lock(&b->mutex);
    while (b->used + bytes > b->total) /* bytes <= total: another decode's return wakes us */
        pthread_cond_wait(&b->freed, &b->mutex);
    b->used += bytes;
    pthread_mutex_unlock(&b->mutex);
}

void imsi_decode_call_release(imsi_decode_call *call)
{
    ims_decode_budget *b = call->o->budget;
    if (!b || !call->reserved)
        return;
    pthread_mutex_lock(&b->mutex);
    b->used -= call->reserved;
    pthread_cond_broadcast(&b->freed);
    pthread_mutex_unlock(&b->mutex);
    call->reserved = 0;
}

/* MiB, for messages. */
static double mib(uint64_t bytes) { return (double)bytes / 1048576.0; }

ims_status imsi_image_check_limits(uint64_t w, uint64_t h, const ims_decode_options *o, const char *what,
                                   ims_image *out, ims_error *err)
{
    if (w == 0 || h == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "image is %llu x %llu, which is empty", (unsigned long long)w,
                             (unsigned long long)h);
    if (w > UINT32_MAX || h > UINT32_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s of %llu x %llu pixels is too large", what,
                             (unsigned long long)w, (unsigned long long)h);
    /* w, h < 2^32 each, so the product fits in 64 bits. */
    uint64_t n = w * h;
    if (n > o->max_pixels) {
        char a[32], b[32];
        return ims_error_set(err, IMS_ERR_FORMAT, "image is %llu x %llu = %s pixels, over the limit of %s (--max-pixels)",
                             (unsigned long long)w, (unsigned long long)h, short_count(n, a),
                             short_count(o->max_pixels, b));
    }
    if (n > SIZE_MAX / 4 || w > INT32_MAX || h > INT32_MAX)
        return ims_error_set(err, IMS_ERR_NOMEM, "image is %llu x %llu, too large for this machine", (unsigned long long)w,
                             (unsigned long long)h);
    if (n > o->warn_pixels)
        out->warnings |= IMS_IMAGE_WARNING_LARGE;
    return IMS_OK;
}

ims_status imsi_image_check_size(uint64_t w, uint64_t h, imsi_decode_call *call, const char *what,
                                 unsigned work_bytes, ims_image *out, ims_error *err)
{
    const ims_decode_options *o = call->o;
    ims_status st = imsi_image_check_limits(w, h, o, what, out, err);
    if (st)
        return st;
    uint64_t n = w * h; /* < 2^62 after the limits */
    if (o->budget && !call->reserved) {
        uint64_t per = work_bytes > 3 ? work_bytes : 3, need = n > UINT64_MAX / per ? UINT64_MAX : n * per;
        if (need > o->budget->total)
            return ims_error_set(err, IMS_ERR_NOMEM,
                                 "%s of %llu x %llu needs %.0f MiB to decode, more than the decode memory budget "
                                 "of %.0f MiB", what, (unsigned long long)w, (unsigned long long)h, mib(need),
                                 mib(o->budget->total));
        budget_reserve(o->budget, need);
        call->reserved = need;
    }
    return IMS_OK;
}

void imsi_image_clear(ims_image *img)
{
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
    img->warnings = 0;
}

ims_status imsi_image_alloc(ims_image *out, int w, int h, const char *what, ims_error *err)
{
    /* imsi_image_check_size bounded w * h * 4 by SIZE_MAX */
    out->pixels = malloc((size_t)w * (size_t)h * 3);
    if (!out->pixels)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %d x %d %s", w, h, what);
    out->width = w, out->height = h;
    return IMS_OK;
}

/* ---- EXIF orientation ---- */


static unsigned rd16(const unsigned char *p, int be) { return be ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0]; }

static uint32_t rd32(const unsigned char *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t rd64(const unsigned char *p, int be)
{
    return be ? (uint64_t)rd32(p, 1) << 32 | rd32(p + 4, 1) : (uint64_t)rd32(p + 4, 0) << 32 | rd32(p, 0);
}

/* Bytes per value of a TIFF type as Pillow loads it; 0: a type Pillow skips. */
static unsigned tiff_unit_size(unsigned type)
{
    static const unsigned char size[17] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 0, 0, 8};
    return type < 17 ? size[type] : 0;
}

/* Pillow's value of the first element v of type `type` as an orientation:
 * integers as they are, rationals and floats when they equal an integer
 * exactly (Pillow's dict lookup then matches); BYTE, ASCII and UNDEFINED load
 * as bytes or str, which match nothing. 9 = present but no transform. */
static int tiff_orientation_value(const unsigned char *v, unsigned type, int be)
{
    int64_t x;
    switch (type) {
    case 3: x = rd16(v, be); break;
    case 4: case 13: x = rd32(v, be); break;
    case 6: x = (signed char)v[0]; break;
    case 8: x = (int16_t)rd16(v, be); break;
    case 9: x = (int32_t)rd32(v, be); break;
    case 16: x = rd64(v, be) > 8 ? 9 : (int64_t)rd64(v, be); break;
    case 5: case 10: {
        int64_t n = type == 5 ? (int64_t)rd32(v, be) : (int32_t)rd32(v, be);
        int64_t d = type == 5 ? (int64_t)rd32(v + 4, be) : (int32_t)rd32(v + 4, be);
        x = d != 0 && n % d == 0 ? n / d : 9;
        break;
    }
    case 11: {
        uint32_t bits = rd32(v, be);
        float f;
        memcpy(&f, &bits, 4);
        x = f >= 1 && f <= 8 && f == (float)(int)f ? (int)f : 9;
        break;
    }
    case 12: {
        uint64_t bits = rd64(v, be);
        double f;
        memcpy(&f, &bits, 8);
        x = f >= 1 && f <= 8 && f == (double)(int)f ? (int)f : 9;
        break;
    }
    default: x = 9; break;
    }
    return x >= 1 && x <= 8 ? (int)x : 9;
}

/* The orientation (0 = absent, 9 = present but not a transform) of IFD0 tag
 * 0x0112 in an EXIF block, read as Pillow's Exif.load and
 * ImageFileDirectory_v2.load do: up to two "Exif\0\0" prefixes stripped; a
 * short IFD keeps the entries before the cut; the first loadable entry of a
 * tag wins; a value over 4 bytes is read at its offset, skipped when outside
 * the block or when the out-of-line sizes so far exceed the block's length;
 * a count over 1 keeps the first value (Orientation is specified as 1). */
int imsi_exif_orientation(const unsigned char *t, size_t n)
{
    for (int k = 0; k < 2 && n >= 6 && memcmp(t, "Exif\0\0", 6) == 0; k++)
        t += 6, n -= 6;
    if (n < 8)
        return 0;
    int be;
    if (memcmp(t, "II*\0", 4) == 0)
        be = 0;
    else if (memcmp(t, "MM\0*", 4) == 0)
        be = 1;
    else
        return 0;
    uint32_t ifd = rd32(t + 4, be);
    if (ifd > n || n - ifd < 2)
        return 0;
    size_t count = rd16(t + ifd, be);
    if ((n - ifd - 2) / 12 < count)
        count = (n - ifd - 2) / 12;
    uint64_t loaded[65536 / 64]; /* tags already loaded: later duplicates are skipped */
    memset(loaded, 0, sizeof loaded);
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *e = t + ifd + 2 + i * 12;
        unsigned tag = rd16(e, be), type = rd16(e + 2, be), unit = tiff_unit_size(type);
        if (loaded[tag / 64] >> (tag % 64) & 1 || unit == 0)
            continue;
        uint64_t size = (uint64_t)rd32(e + 4, be) * unit; /* < 2^35: no overflow */
        const unsigned char *v = e + 8;
        if (size > 4) {
            uint32_t off = rd32(e + 8, be);
            total += size;
            if (total > n)
                continue;
            if (off > n || size > n - off)
                continue; /* Pillow: "Possibly corrupt EXIF data", tag skipped */
            v = t + off;
        }
        if (size == 0)
            continue;
        loaded[tag / 64] |= 1ull << (tag % 64);
        if (tag == 0x0112)
            return tiff_orientation_value(v, type, be);
    }
    return 0;
}

/* Pillow's XMP fallback: the first tiff:Orientation="D or tiff:Orientation>D. */
int imsi_xmp_orientation(const unsigned char *p, size_t n)
{
    static const char key[] = "tiff:Orientation";
    size_t k = sizeof key - 1;
    for (size_t i = 0; n >= k + 2 && i <= n - k - 2; i++) {
        if (memcmp(p + i, key, k) != 0)
            continue;
        const unsigned char *q = p + i + k;
        if (q[0] == '>' && q[1] >= '0' && q[1] <= '9')
            return q[1] - '0';
        if (q[0] == '=' && n - i - k >= 3 && q[1] == '"' && q[2] >= '0' && q[2] <= '9')
            return q[2] - '0';
    }
    return 0;
}

/* Applies orientation o as Pillow's exif_transpose: the output pixel (x, y)
 * comes from source (sx, sy). Orientations 5..8 swap width and height. */
ims_status imsi_image_orient(ims_image *img, int o, ims_error *err)
{
    if (o <= 1 || o > 8)
        return IMS_OK;
    int w = img->width, h = img->height;
    int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    uint8_t *dst = malloc((size_t)w * h * 3);
    if (!dst)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory rotating a %d x %d image", w, h);
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = w - 1 - x, sy = y; break;         /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x, sy = h - 1 - y; break; /* ROTATE_180 */
            case 4: sx = x, sy = h - 1 - y; break;         /* FLIP_TOP_BOTTOM */
            case 5: sx = y, sy = x; break;                 /* TRANSPOSE */
            case 6: sx = y, sy = h - 1 - x; break;         /* ROTATE_270 */
            case 7: sx = w - 1 - y, sy = h - 1 - x; break; /* TRANSVERSE */
            default: sx = w - 1 - y, sy = x; break;        /* 8: ROTATE_90 */
            }
            memcpy(dst + ((size_t)y * ow + x) * 3, img->pixels + ((size_t)sy * w + sx) * 3, 3);
        }
    }
    free(img->pixels);
    img->pixels = dst;
    img->width = ow;
    img->height = oh;
    return IMS_OK;
}
