/* image/decode_tiff.c: TIFF -> RGB8 with libtiff (4.x), the first page, as
 * Pillow's TiffImagePlugin + convert('RGB') give it.
 *
 * libtiff decompresses (any codec it was built with: LZW, Deflate, JPEG,
 * PackBits, CCITT, ...), undoes predictors, bit order (FillOrder 2) and byte
 * order (16-bit samples arrive in host order), for strips and tiles alike;
 * JPEG-compressed YCbCr comes out as RGB (JPEGCOLORMODE_RGB, as Pillow asks).
 * The samples are then converted here as Pillow's modes convert:
 * - gray (MinIsBlack, or MinIsWhite inverted) of 1, 2, 4, 8 bits: bits
 *   replicated to 8 (v * 255 / (2^b - 1)); 16 bits (Pillow's I;16): clipped
 *   to 255, never scaled, MinIsWhite not inverted (Pillow's table); with an
 *   extra sample (LA, LX) the alpha is dropped;
 * - RGB 8 bits, with up to three extra samples: unassociated alpha or
 *   unspecified extras dropped; associated (premultiplied) alpha first
 *   un-premultiplied as Pillow's RGBa unpacker (v * 255 / a, 0 where a = 0);
 *   16 bits: the high byte;
 * - palette (1, 2, 4, 8 bits, and 8 + an extra sample): the colormap's high
 *   bytes (v / 256); an index past it is black;
 * - CMYK 8 bits (with up to two unspecified extras) and 16 bits (the high
 *   byte): Pillow's cmyk2rgb, (255 - k) - c (255 - k) / 255 per channel (not
 *   the Adobe-inverted JPEG reading);
 * - YCbCr of one sample is gray; of three, only JPEG-compressed.
 * The key (byte order, photometric, sample format, fill order, bits,
 * extra samples) must be one of Pillow's OPEN_INFO entries; others Pillow
 * refuses and so do we. Refused too although Pillow reads them (its modes I,
 * F, I;16S, La, LAB, YCbCr without JPEG, 12-bit gray, old-style JPEG),
 * and separate planes (PlanarConfiguration 2).
 *
 * Orientation: Pillow (11+) applies the TIFF Orientation tag when it loads
 * the image, so a TIFF comes out rotated whether or not
 * apply_exif_orientation is set (the tag, read as its getexif() reads IFD0,
 * else the XMP packet's tiff:Orientation).
 *
 * Limits: width * height is checked before libtiff reads any strip; one
 * strip or tile buffer is allocated at a time, and libtiff's own single
 * allocations are capped.
 */
#include "image/decode_formats.h"

#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

typedef struct tiff_src {
    const unsigned char *data;
    size_t size;
    uint64_t pos;
    char msg[256]; /* libtiff's first error */
} tiff_src;

static tmsize_t src_read(thandle_t h, void *buf, tmsize_t n)
{
    tiff_src *s = (tiff_src *)h;
    if (n <= 0 || s->pos >= s->size)
        return 0;
    size_t k = (size_t)n < s->size - s->pos ? (size_t)n : (size_t)(s->size - s->pos);
    memcpy(buf, s->data + s->pos, k);
    s->pos += k;
    return (tmsize_t)k;
}

static tmsize_t src_write(thandle_t h, void *buf, tmsize_t n) { (void)h, (void)buf, (void)n; return -1; }

static toff_t src_seek(thandle_t h, toff_t off, int whence)
{
    tiff_src *s = (tiff_src *)h;
    uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->size : 0;
    s->pos = base + off; /* past the end is fine: reads there return 0 */
    return s->pos;
}

static int src_close(thandle_t h) { (void)h; return 0; }
static toff_t src_size(thandle_t h) { return ((tiff_src *)h)->size; }

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)module;
    tiff_src *s = user;
    if (!s->msg[0]) {
        vsnprintf(s->msg, sizeof s->msg, fmt, ap);
        for (char *c = s->msg; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
    }
    return 1;
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1; /* the library never prints */
}

/* How the decoded samples of one pixel become RGB. */
typedef enum tiff_kind {
    TIFF_GRAY,    /* bits 1..8; first sample of spp */
    TIFF_GRAY16,  /* clipped to 255 */
    TIFF_RGB,     /* 8 bits; first three of spp */
    TIFF_RGBA_PREMUL,
    TIFF_RGB16,   /* high bytes */
    TIFF_RGBA16_PREMUL,
    TIFF_PALETTE, /* bits 1..8 */
    TIFF_CMYK,
    TIFF_CMYK16,
} tiff_kind;

typedef struct tiff_layout {
    tiff_kind kind;
    int bits, spp, invert; /* invert: MinIsWhite of 1..8 bits */
    uint8_t palette[256][3];
    unsigned palette_count;
} tiff_layout;

/* One OPEN_INFO key of Pillow's (after its fix-ups) -> a layout, or a reason. */
static const char *tiff_choose(int be, int photo, int sf, int fill, int bits, int spp, const uint16_t *extra,
                               int nextra, tiff_layout *L)
{
    int e0 = nextra > 0 ? extra[0] : -1;
    int extras_unspecified = 1; /* every extra after the first is 0 */
    for (int i = 1; i < nextra; i++)
        extras_unspecified &= extra[i] == 0;
    L->bits = bits, L->spp = spp, L->invert = 0;
    if (sf != 1 && !(sf == 2 && bits == 8 && photo == 1 && spp == 1))
        return "signed or floating-point samples (Pillow's I and F modes)";
    switch (photo) {
    case 0: case 1: /* gray */
        if (spp == 1 && nextra == 0) {
            if ((bits == 1 || bits == 2 || bits == 4 || bits == 8) && (sf == 1 || fill == 1)) {
                L->kind = TIFF_GRAY, L->invert = photo == 0;
                return NULL;
            }
            if (bits == 16 && fill == 1 && (!be || photo == 1)) {
                L->kind = TIFF_GRAY16;
                return NULL;
            }
            if (bits == 16 && fill == 2 && !be && photo == 1) {
                L->kind = TIFF_GRAY16;
                return NULL;
            }
            break;
        }
        if (photo == 1 && bits == 8 && spp == 2 && nextra == 1 && fill == 1 && (e0 == 0 || e0 == 2)) {
            L->kind = TIFF_GRAY;
            return NULL;
        }
        if (photo == 1 && bits == 8 && spp == 2 && e0 == 1)
            return "gray with premultiplied alpha (Pillow's La mode)";
        break;
    case 2: /* RGB */
        if (bits == 8 && spp == 3 && nextra == 0) {
            L->kind = TIFF_RGB;
            return NULL;
        }
        if (bits == 8 && fill == 1 && spp >= 4 && spp <= 6 && nextra == spp - 3 && extras_unspecified &&
            (e0 == 0 || e0 == 1 || e0 == 2 || (e0 == 999 && spp == 4))) {
            L->kind = e0 == 1 ? TIFF_RGBA_PREMUL : TIFF_RGB;
            return NULL;
        }
        if (bits == 8 && fill == 1 && spp == 4 && nextra == 0) { /* Pillow: RGBA without ExtraSamples */
            L->kind = TIFF_RGB;
            return NULL;
        }
        if (bits == 16 && fill == 1 && (spp == 3 || spp == 4) && nextra == spp - 3 && (nextra == 0 || e0 <= 2)) {
            L->kind = e0 == 1 ? TIFF_RGBA16_PREMUL : TIFF_RGB16;
            return NULL;
        }
        if (bits == 16 && fill == 1 && spp == 4 && nextra == 0) {
            L->kind = TIFF_RGB16;
            return NULL;
        }
        break;
    case 3: /* palette */
        if ((bits == 1 || bits == 2 || bits == 4 || bits == 8) && spp == 1 && nextra == 0) {
            L->kind = TIFF_PALETTE;
            return NULL;
        }
        if (bits == 8 && spp == 2 && fill == 1 && nextra == 1 && (e0 == 0 || e0 == 2)) {
            L->kind = TIFF_PALETTE;
            return NULL;
        }
        break;
    case 5: /* CMYK */
        if (bits == 8 && fill == 1 && spp >= 4 && spp <= 6 && nextra == spp - 4 && (nextra == 0 || e0 == 0) &&
            extras_unspecified) {
            L->kind = TIFF_CMYK;
            return NULL;
        }
        if (bits == 16 && fill == 1 && spp == 4 && nextra == 0) {
            L->kind = TIFF_CMYK16;
            return NULL;
        }
        break;
    case 6: /* YCbCr: one sample is gray; three are handled by the caller (JPEG only) */
        if (bits == 8 && fill == 1 && spp == 1 && nextra == 0) {
            L->kind = TIFF_GRAY;
            return NULL;
        }
        break;
    case 8: return "CIELab color (Pillow's LAB mode)";
    default: break;
    }
    return "a sample layout Pillow does not read either";
}

static unsigned sample_bits(const uint8_t *row, size_t i, int bits)
{
    size_t bit = i * (size_t)bits;
    return (unsigned)(row[bit >> 3] >> (8 - bits - (int)(bit & 7))) & ((1u << bits) - 1);
}

/* Pillow's RGBa unpackers: v * 255 / a, clipped; 0 where a = 0. */
static uint8_t unpremultiply(unsigned v, unsigned a)
{
    if (a == 0)
        return 0;
    unsigned x = v * 255 / a;
    return (uint8_t)(x > 255 ? 255 : x);
}

/* n pixels of decoded samples (host order for 16 bits) -> RGB. */
static void tiff_convert(const tiff_layout *L, const uint8_t *in, size_t n, uint8_t *out)
{
    const uint16_t *in16 = (const uint16_t *)(const void *)in;
    size_t spp = (size_t)L->spp;
    for (size_t i = 0; i < n; i++, out += 3) {
        switch (L->kind) {
        case TIFF_GRAY: {
            unsigned v = L->bits == 8 ? in[i * spp] : sample_bits(in, i, L->bits) * 255 / ((1u << L->bits) - 1);
            if (L->invert)
                v = 255 - v;
            out[0] = out[1] = out[2] = (uint8_t)v;
            break;
        }
        case TIFF_GRAY16: {
            unsigned v = in16[i];
            out[0] = out[1] = out[2] = (uint8_t)(v > 255 ? 255 : v);
            break;
        }
        case TIFF_RGB:
            memcpy(out, in + i * spp, 3);
            break;
        case TIFF_RGBA_PREMUL: {
            const uint8_t *p = in + i * spp;
            out[0] = unpremultiply(p[0], p[3]), out[1] = unpremultiply(p[1], p[3]), out[2] = unpremultiply(p[2], p[3]);
            break;
        }
        case TIFF_RGB16: {
            const uint16_t *p = in16 + i * spp;
            out[0] = (uint8_t)(p[0] >> 8), out[1] = (uint8_t)(p[1] >> 8), out[2] = (uint8_t)(p[2] >> 8);
            break;
        }
        case TIFF_RGBA16_PREMUL: {
            const uint16_t *p = in16 + i * spp;
            unsigned a = p[3] >> 8;
            out[0] = unpremultiply(p[0] >> 8, a), out[1] = unpremultiply(p[1] >> 8, a),
            out[2] = unpremultiply(p[2] >> 8, a);
            break;
        }
        case TIFF_PALETTE: {
            unsigned v = L->bits == 8 ? in[i * spp] : sample_bits(in, i, L->bits);
            if (v < L->palette_count)
                memcpy(out, L->palette[v], 3);
            else
                out[0] = out[1] = out[2] = 0;
            break;
        }
        case TIFF_CMYK: {
            const uint8_t *p = in + i * spp;
            imsi_cmyk_pixel_to_rgb(p[0], p[1], p[2], p[3], out);
            break;
        }
        case TIFF_CMYK16: {
            const uint16_t *p = in16 + i * spp;
            imsi_cmyk_pixel_to_rgb(p[0] >> 8, p[1] >> 8, p[2] >> 8, p[3] >> 8, out);
            break;
        }
        }
    }
}

/* Reads the layout from the directory; NULL or why not. */
static ims_status tiff_layout_read(TIFF *tif, int be, tiff_layout *L, ims_error *err)
{
    uint16_t photo = 0, sf = 1, fill = 1, bits = 1, spp = 1, planar = 1, compression = 1;
    uint16_t nextra = 0, *extra = NULL;
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo))
        photo = 0; /* Pillow's default for the missing (required) tag */
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sf);
    TIFFGetFieldDefaulted(tif, TIFFTAG_FILLORDER, &fill);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
    if (compression == COMPRESSION_OJPEG)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "TIFF with old-style JPEG compression is not supported");
    if (!TIFFIsCODECConfigured(compression))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "TIFF compression %u is not available in this build's libtiff",
                             (unsigned)compression);
    if (planar != PLANARCONFIG_CONTIG && spp > 1)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "TIFF with separate color planes is not supported");
    if (spp > 6 || spp < 1)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "TIFF with %u samples per pixel is not supported", (unsigned)spp);
    if (photo == PHOTOMETRIC_YCBCR && spp == 3) {
        if (compression != COMPRESSION_JPEG || bits != 8 || nextra != 0)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "TIFF with YCbCr samples is supported only JPEG-compressed");
        /* libjpeg converts to RGB, as Pillow asks libtiff to */
        if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
            return ims_error_set(err, IMS_ERR_FORMAT, "TIFF: cannot read its JPEG data as RGB");
        L->kind = TIFF_RGB, L->bits = 8, L->spp = 3, L->invert = 0;
        return IMS_OK;
    }
    const char *why = tiff_choose(be, photo, sf, fill, bits, spp, extra, nextra, L);
    if (why)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                             "TIFF of %u-bit samples x %u (photometric %u, sample format %u, %u extra) is not supported: %s",
                             (unsigned)bits, (unsigned)spp, (unsigned)photo, (unsigned)sf, (unsigned)nextra, why);
    if (L->kind == TIFF_PALETTE) {
        uint16_t *r, *g, *b;
        if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b))
            return ims_error_set(err, IMS_ERR_FORMAT, "TIFF palette image without a colormap");
        L->palette_count = 1u << bits;
        for (unsigned i = 0; i < L->palette_count; i++)
            L->palette[i][0] = (uint8_t)(r[i] >> 8), L->palette[i][1] = (uint8_t)(g[i] >> 8),
            L->palette[i][2] = (uint8_t)(b[i] >> 8);
    }
    return IMS_OK;
}

/* Strips: each decoded and converted in turn into out. */
static ims_status read_strips(TIFF *tif, const tiff_layout *L, int w, int h, uint8_t *buf, tmsize_t buf_size,
                              uint8_t *out, tiff_src *src, ims_error *err)
{
    uint32_t rps = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    if (rps == 0 || rps > (uint32_t)h)
        rps = (uint32_t)h;
    tmsize_t line = TIFFScanlineSize(tif);
    uint32_t strips = TIFFNumberOfStrips(tif);
    for (uint32_t s = 0, y = 0; y < (uint32_t)h; s++, y += rps) {
        uint32_t rows = (uint32_t)h - y < rps ? (uint32_t)h - y : rps;
        if (s >= strips)
            return ims_error_set(err, IMS_ERR_FORMAT, "TIFF has %u strips, too few for %d rows", strips, h);
        tmsize_t want = 0;
        if (line <= 0 || __builtin_mul_overflow(line, (tmsize_t)rows, &want) || want > buf_size)
            return ims_error_set(err, IMS_ERR_FORMAT, "TIFF strip %u is larger than its rows", s);
        if (TIFFReadEncodedStrip(tif, s, buf, want) != want)
            return ims_error_set(err, IMS_ERR_FORMAT, "TIFF strip %u is truncated or corrupt%s%s", s,
                                 src->msg[0] ? ": " : "", src->msg);
        for (uint32_t r = 0; r < rows; r++)
            tiff_convert(L, buf + (size_t)r * (size_t)line, (size_t)w, out + ((size_t)(y + r) * (size_t)w) * 3);
    }
    return IMS_OK;
}

/* Tiles: each decoded, its part inside the image converted into place. */
static ims_status read_tiles(TIFF *tif, const tiff_layout *L, int w, int h, uint8_t *buf, tmsize_t buf_size,
                             uint8_t *out, tiff_src *src, ims_error *err)
{
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    tmsize_t row = TIFFTileRowSize(tif);
    tmsize_t tile_bytes = 0;
    if (tw == 0 || th == 0 || row <= 0 || __builtin_mul_overflow(row, (tmsize_t)th, &tile_bytes) ||
        tile_bytes > buf_size)
        return ims_error_set(err, IMS_ERR_FORMAT, "TIFF tiles of %u x %u do not fit their size", tw, th);
    for (uint32_t y = 0; y < (uint32_t)h; y += th) {
        for (uint32_t x = 0; x < (uint32_t)w; x += tw) {
            ttile_t t = TIFFComputeTile(tif, x, y, 0, 0);
            if (TIFFReadEncodedTile(tif, t, buf, buf_size) < 0)
                return ims_error_set(err, IMS_ERR_FORMAT, "TIFF tile %u is truncated or corrupt%s%s", (unsigned)t,
                                     src->msg[0] ? ": " : "", src->msg);
            uint32_t cols = (uint32_t)w - x < tw ? (uint32_t)w - x : tw;
            uint32_t rows = (uint32_t)h - y < th ? (uint32_t)h - y : th;
            for (uint32_t r = 0; r < rows; r++)
                tiff_convert(L, buf + (size_t)r * (size_t)row, cols,
                             out + ((size_t)(y + r) * (size_t)w + x) * 3);
        }
    }
    return IMS_OK;
}

/* Pillow's orientation for a TIFF: IFD0's tag as getexif() reads it (classic
 * TIFF: the same reader as EXIF; BigTIFF: libtiff's value), else XMP. */
static int tiff_orientation(TIFF *tif, const unsigned char *data, size_t size)
{
    int o = 0;
    if (!TIFFIsBigTIFF(tif)) {
        o = imsi_exif_orientation(data, size);
    } else {
        uint16_t v = 0;
        if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &v))
            o = v >= 1 && v <= 8 ? v : 9;
    }
    if (!o) {
        uint32_t n = 0;
        const unsigned char *xmp = NULL;
        if (TIFFGetField(tif, TIFFTAG_XMLPACKET, &n, &xmp) && xmp)
            o = imsi_xmp_orientation(xmp, n);
    }
    return o;
}

ims_status imsi_decode_tiff(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                            ims_error *err)
{
    const ims_decode_options *o = call->o;
    tiff_src src = {data, size, 0, ""};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts)
        return ims_error_set(err, IMS_ERR_NOMEM, "TIFF: cannot start the decoder");
    /* One allocation inside libtiff at most 16 bytes a pixel of the largest
     * image allowed (plus room for directories): a forged strip size cannot
     * make it allocate more. */
    uint64_t cap = o->max_pixels < (UINT64_MAX - (64u << 20)) / 16 ? o->max_pixels * 16 + (64u << 20) : UINT64_MAX;
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, cap > (uint64_t)INT64_MAX ? INT64_MAX : (tmsize_t)cap);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &src);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &src);
    /* "m": never memory-map (there is no file); "h": the first directory only, read lazily */
    TIFF *tif = TIFFClientOpenExt("TIFF", "rm", (thandle_t)&src, src_read, src_write, src_seek, src_close, src_size,
                                  NULL, NULL, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif)
        return ims_error_set(err, IMS_ERR_FORMAT, "bad TIFF: %s", src.msg[0] ? src.msg : "cannot read its header");
    ims_status st = IMS_OK;
    uint8_t *buf = NULL;
    uint32_t w = 0, h = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    tiff_layout L;
    memset(&L, 0, sizeof L);
    st = imsi_image_check_size(w, h, call, "TIFF", 11, out, err);
    if (!st)
        st = tiff_layout_read(tif, data[0] == 'M', &L, err);
    int tiled = TIFFIsTiled(tif);
    tmsize_t buf_size = 0;
    if (!st) {
        /* One strip or tile at a time; its size is bounded by the image's
         * (a tile may reach past the edge, by less than its own size). */
        uint64_t need = tiled ? (uint64_t)TIFFTileSize64(tif) : (uint64_t)TIFFStripSize64(tif);
        uint64_t px_bytes = ((uint64_t)L.spp * (uint64_t)L.bits + 7) / 8 + 1, bound = 0;
        if (__builtin_mul_overflow((uint64_t)w + 64, (uint64_t)h + 64, &bound) ||
            __builtin_mul_overflow(bound, px_bytes * 4, &bound))
            bound = UINT64_MAX; /* then need > SIZE_MAX decides */
        if (need == 0 || need > bound || need > (uint64_t)INT64_MAX || need > SIZE_MAX)
            st = ims_error_set(err, IMS_ERR_FORMAT, "TIFF %s of %llu bytes for a %u x %u image", tiled ? "tile" : "strip",
                               (unsigned long long)need, w, h);
        else if (!(buf = malloc((size_t)need)))
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a TIFF %s of %llu bytes",
                               tiled ? "tile" : "strip", (unsigned long long)need);
        buf_size = (tmsize_t)need;
    }
    if (!st)
        st = imsi_image_alloc(out, (int)w, (int)h, "TIFF", err);
    if (!st)
        st = tiled ? read_tiles(tif, &L, (int)w, (int)h, buf, buf_size, out->pixels, &src, err)
                   : read_strips(tif, &L, (int)w, (int)h, buf, buf_size, out->pixels, &src, err);
    if (!st)
        st = imsi_image_orient(out, tiff_orientation(tif, data, size), err);
    free(buf);
    if (st)
        imsi_image_clear(out);
    TIFFClose(tif);
    return st;
}
