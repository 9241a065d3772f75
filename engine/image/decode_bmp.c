/* image/decode_bmp.c: BMP -> RGB8, our own reader (no well-kept BMP library
 * is packaged), written to give what Pillow's BmpImagePlugin + convert('RGB')
 * give, quirks included, and to refuse what it refuses.
 *
 * Layout: "BM", the file header (14 bytes: the pixel data's offset at 10),
 * an info header of 12 (OS/2 v1: 16-bit sizes, BGR palette) or 40/52/56/64/
 * 108/124 bytes (32-bit sizes, BGRX palette; a height whose top byte is 0xFF
 * is negative: rows top-down), then the palette (1/4/8 bits), then rows of
 * ((width * bits + 31) / 32) * 4 bytes, bottom-up unless the height was negative.
 *
 * As Pillow:
 * - bits 1, 4, 8 (palette), 16 (5-5-5, each channel v * 255 / 31),
 *   24 (BGR), 32 (BGRX: the fourth byte is ignored); BITFIELDS only for the
 *   masks Pillow lists (16: 5-6-5 and 5-5-5; 24: BGR; 32: eight byte orders,
 *   alpha dropped); RLE8 and RLE4 decoded as Pillow's BmpRleDecoder does
 *   (runs clipped to the row, absolute runs word-aligned in the file, deltas
 *   as zeros) and refused when they end before the image is complete.
 * - The palette (colors entries, 2^bits when 0; 1..65536) is read right
 *   after the header; when its entries are exactly the gray ramp (black and
 *   white for 2 colors) Pillow reads the pixels as "1" or "L" instead: the
 *   same values for well-formed files, and for 8-bit pixels with a short gray
 *   palette the index itself rather than black. An index past the palette is
 *   black. When the pixel offset points right after the header, the palette
 *   is skipped over first (Pillow's fix for writers that forgot it).
 * - Missing pixel data is refused ("truncated"), the last row's padding excepted.
 * Not read (refused): other bit depths, masks and compressions (JPEG/PNG in
 * BMP), other header sizes; a 1-bit gray reading of 8-bit RLE data.
 */
#include "image/decode_formats.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static unsigned le16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

/* How each row's pixels are laid out (Pillow's rawmode). */
typedef enum bmp_raw {
    BMP_RAW_P1, BMP_RAW_P4, BMP_RAW_P8, /* palette indices, most significant bits first */
    BMP_RAW_1,                          /* 1 bit a pixel: 0 or 255 gray */
    BMP_RAW_L,                          /* 1 byte a pixel: gray */
    BMP_RAW_BGR15, BMP_RAW_BGR16,       /* 16-bit little-endian 5-5-5 / 5-6-5 */
    BMP_RAW_BYTES,                      /* 3 or 4 bytes a pixel, R, G, B at the offsets given */
} bmp_raw;

typedef struct bmp_info {
    uint64_t width, height;
    int top_down;
    unsigned bits;
    uint32_t compression, colors;
    bmp_raw raw;
    int raw_bits;        /* bits a pixel of the raw layout */
    int r_at, g_at, b_at; /* BMP_RAW_BYTES: byte offsets in a pixel */
    uint8_t palette[256][3];
    unsigned palette_count; /* entries read (at most 256 matter: indices are bytes) */
    int gray;               /* the palette was a gray ramp: raw is 1 or L */
} bmp_info;

enum { BMP_RGB = 0, BMP_RLE8 = 1, BMP_RLE4 = 2, BMP_BITFIELDS = 3 };

/* Pillow's MASK_MODES: 32-bit masks (r, g, b, a) -> byte offsets of R, G, B. */
static int bitfields32(const uint32_t m[4], bmp_info *b)
{
    static const struct {
        uint32_t r, g, b, a;
        int r_at, g_at, b_at;
    } known[] = {
        {0xFF0000, 0xFF00, 0xFF, 0x0, 2, 1, 0},              /* BGRX */
        {0xFF000000, 0xFF0000, 0xFF00, 0x0, 3, 2, 1},        /* XBGR */
        {0xFF000000, 0xFF00, 0xFF, 0x0, 3, 1, 0},            /* BGXR */
        {0xFF000000, 0xFF0000, 0xFF00, 0xFF, 3, 2, 1},       /* ABGR */
        {0xFF, 0xFF00, 0xFF0000, 0xFF000000, 0, 1, 2},       /* RGBA */
        {0xFF0000, 0xFF00, 0xFF, 0xFF000000, 2, 1, 0},       /* BGRA */
        {0xFF000000, 0xFF00, 0xFF, 0xFF0000, 3, 1, 0},       /* BGAR */
        {0x0, 0x0, 0x0, 0x0, 2, 1, 0},                       /* BGRA */
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (m[0] == known[i].r && m[1] == known[i].g && m[2] == known[i].b && m[3] == known[i].a) {
            b->raw = BMP_RAW_BYTES, b->raw_bits = 32;
            b->r_at = known[i].r_at, b->g_at = known[i].g_at, b->b_at = known[i].b_at;
            return 1;
        }
    return 0;
}

/* The headers and the palette; *pixels_at: where the pixel data starts. */
static ims_status bmp_read_header(const unsigned char *d, size_t n, bmp_info *b, size_t *pixels_at, ims_error *err)
{
    if (n < 18)
        return ims_error_set(err, IMS_ERR_FORMAT, "BMP file is truncated (%zu bytes, in its header)", n);
    uint64_t offset = le32(d + 10);
    uint32_t header = le32(d + 14);
    if (header != 12 && header != 40 && header != 52 && header != 56 && header != 64 && header != 108 &&
        header != 124)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "unsupported BMP header type (%u bytes)", (unsigned)header);
    if (n - 14 < header)
        return ims_error_set(err, IMS_ERR_FORMAT, "BMP file is truncated (in its %u-byte header)", (unsigned)header);
    const unsigned char *h = d + 18; /* the header after its size field */
    size_t pos = 14 + (size_t)header;
    unsigned palette_padding;
    uint32_t masks[4] = {0, 0, 0, 0};
    if (header == 12) {
        b->width = le16(h), b->height = le16(h + 2);
        b->bits = le16(h + 6);
        b->compression = BMP_RGB;
        b->colors = 0;
        palette_padding = 3;
    } else {
        b->width = le32(h);
        uint32_t raw_height = le32(h + 4);
        b->top_down = h[7] == 0xFF; /* Pillow's test for a negative height */
        b->height = b->top_down ? ((uint64_t)1 << 32) - raw_height : raw_height;
        b->bits = le16(h + 10);
        b->compression = le32(h + 12);
        b->colors = le32(h + 28);
        palette_padding = 4;
        if (b->compression == BMP_BITFIELDS) {
            if (header >= 52) {
                for (int i = 0; i < (header >= 56 ? 4 : 3); i++)
                    masks[i] = le32(h + 36 + 4 * i);
            } else { /* 40-byte header: three masks follow it */
                if (n - pos < 12)
                    return ims_error_set(err, IMS_ERR_FORMAT, "BMP file is truncated (in its color masks)");
                for (int i = 0; i < 3; i++)
                    masks[i] = le32(d + pos + 4 * (size_t)i);
                pos += 12;
            }
        }
    }
    uint64_t colors = b->colors ? b->colors : (uint64_t)1 << (b->bits < 33 ? b->bits : 33);
    if (offset == 14 + (uint64_t)header && b->bits <= 8)
        offset += palette_padding * colors;
    switch (b->bits) {
    case 1: b->raw = BMP_RAW_P1, b->raw_bits = 1; break;
    case 4: b->raw = BMP_RAW_P4, b->raw_bits = 4; break;
    case 8: b->raw = BMP_RAW_P8, b->raw_bits = 8; break;
    case 16: b->raw = BMP_RAW_BGR15, b->raw_bits = 16; break;
    case 24: b->raw = BMP_RAW_BYTES, b->raw_bits = 24, b->r_at = 2, b->g_at = 1, b->b_at = 0; break;
    case 32: b->raw = BMP_RAW_BYTES, b->raw_bits = 32, b->r_at = 2, b->g_at = 1, b->b_at = 0; break;
    default: return ims_error_set(err, IMS_ERR_UNSUPPORTED, "unsupported BMP pixel depth (%u bits)", b->bits);
    }
    if (b->compression == BMP_BITFIELDS) {
        int ok = 0;
        if (b->bits == 32)
            ok = bitfields32(masks, b);
        else if (b->bits == 24)
            ok = masks[0] == 0xFF0000 && masks[1] == 0xFF00 && masks[2] == 0xFF;
        else if (b->bits == 16 && masks[0] == 0xF800 && masks[1] == 0x7E0 && masks[2] == 0x1F)
            ok = 1, b->raw = BMP_RAW_BGR16;
        else if (b->bits == 16)
            ok = masks[0] == 0x7C00 && masks[1] == 0x3E0 && masks[2] == 0x1F;
        if (!ok)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                                 "unsupported BMP bitfields layout (%u bits, masks %08x %08x %08x %08x)", b->bits,
                                 (unsigned)masks[0], (unsigned)masks[1], (unsigned)masks[2], (unsigned)masks[3]);
    } else if (b->compression == BMP_RLE8 || b->compression == BMP_RLE4) {
        if (b->bits > 8)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "BMP with RLE compression and %u-bit pixels", b->bits);
    } else if (b->compression != BMP_RGB) {
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "unsupported BMP compression (%u)", (unsigned)b->compression);
    }
    if (b->bits <= 8) {
        if (colors == 0 || colors > 65536)
            return ims_error_set(err, IMS_ERR_FORMAT, "unsupported BMP palette size (%llu)", (unsigned long long)colors);
        /* Pillow reads what is there: a short file gives a short palette. */
        size_t want = (size_t)colors * palette_padding, have = pos < n ? n - pos : 0;
        size_t got = want < have ? want : have;
        const unsigned char *p = d + pos;
        int gray = 1;
        for (uint64_t i = 0; i < colors; i++) {
            unsigned v = colors == 2 ? (i ? 255 : 0) : (unsigned)(i & 255);
            size_t at = (size_t)i * palette_padding;
            if (at + 3 > got || p[at] != v || p[at + 1] != v || p[at + 2] != v) {
                gray = 0;
                break;
            }
        }
        b->palette_count = 0; /* whole entries only, as Pillow's putpalette */
        for (size_t i = 0; i < 256 && (i + 1) * palette_padding <= got; i++) {
            b->palette[i][0] = p[i * palette_padding + 2];
            b->palette[i][1] = p[i * palette_padding + 1];
            b->palette[i][2] = p[i * palette_padding];
            b->palette_count++;
        }
        if (gray) {
            b->gray = 1;
            if (colors <= 2) {
                if (b->compression != BMP_RGB)
                    return ims_error_set(err, IMS_ERR_UNSUPPORTED, "BMP: RLE pixels with a black-and-white palette");
                b->raw = BMP_RAW_1, b->raw_bits = 1;
            } else {
                b->raw = BMP_RAW_L, b->raw_bits = 8;
            }
        }
    }
    if (offset == 0) /* Pillow: then the data follows what was read */
        offset = pos + (b->bits <= 8 ? (uint64_t)colors * palette_padding : 0);
    *pixels_at = offset <= n ? (size_t)offset : n;
    return IMS_OK;
}

static void put_index(const bmp_info *b, unsigned v, uint8_t *rgb)
{
    if (b->gray) { /* "L" or "1": the value itself */
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)v;
        return;
    }
    if (v < b->palette_count)
        memcpy(rgb, b->palette[v], 3);
    else
        rgb[0] = rgb[1] = rgb[2] = 0; /* Pillow: past the palette is black */
}

/* One row of raw pixels -> RGB. */
static void unpack_row(const bmp_info *b, const unsigned char *in, int w, uint8_t *out)
{
    for (int x = 0; x < w; x++, out += 3) {
        switch (b->raw) {
        case BMP_RAW_P1: put_index(b, in[x >> 3] >> (7 - (x & 7)) & 1, out); break;
        case BMP_RAW_P4: put_index(b, in[x >> 1] >> (x & 1 ? 0 : 4) & 15, out); break;
        case BMP_RAW_P8: put_index(b, in[x], out); break;
        case BMP_RAW_1: out[0] = out[1] = out[2] = (in[x >> 3] >> (7 - (x & 7)) & 1) ? 255 : 0; break;
        case BMP_RAW_L: out[0] = out[1] = out[2] = in[x]; break;
        case BMP_RAW_BGR15: {
            unsigned v = le16(in + 2 * (size_t)x);
            out[0] = (uint8_t)((v >> 10 & 31) * 255 / 31);
            out[1] = (uint8_t)((v >> 5 & 31) * 255 / 31);
            out[2] = (uint8_t)((v & 31) * 255 / 31);
            break;
        }
        case BMP_RAW_BGR16: {
            unsigned v = le16(in + 2 * (size_t)x);
            out[0] = (uint8_t)((v >> 11 & 31) * 255 / 31);
            out[1] = (uint8_t)((v >> 5 & 63) * 255 / 63);
            out[2] = (uint8_t)((v & 31) * 255 / 31);
            break;
        }
        case BMP_RAW_BYTES: {
            const unsigned char *p = in + (size_t)x * (size_t)(b->raw_bits / 8);
            out[0] = p[b->r_at], out[1] = p[b->g_at], out[2] = p[b->b_at];
            break;
        }
        }
    }
}

/* Pillow's BmpRleDecoder, step for step, into idx (w * h bytes, zeroed).
 * The file position matters: absolute runs are padded to an even offset of
 * the file, not of the pixel data. Returns the bytes produced. */
static size_t rle_decode(const unsigned char *d, size_t n, size_t at, int rle4, size_t w, size_t total, uint8_t *idx)
{
    size_t len = 0, x = 0, pos = at;
    while (len < total) {
        if (pos >= n || n - pos < 2)
            break;
        unsigned count = d[pos], byte = d[pos + 1];
        pos += 2;
        if (count) { /* encoded: count pixels of one byte (two alternating nibbles) */
            size_t k = x + count > w ? (x < w ? w - x : 0) : count;
            for (size_t i = 0; i < k && len < total; i++)
                idx[len++] = (uint8_t)(rle4 ? (i % 2 == 0 ? byte >> 4 : byte & 15) : byte);
            /* Pillow's data never passes the image: k <= the row's rest */
            x += k;
        } else if (byte == 0) { /* end of line */
            while (len % w != 0)
                idx[len++] = 0;
            x = 0;
        } else if (byte == 1) { /* end of bitmap */
            break;
        } else if (byte == 2) { /* delta: right, up, as zeros */
            if (pos >= n || n - pos < 2)
                break;
            size_t skip = (size_t)d[pos] + (size_t)d[pos + 1] * w;
            pos += 2;
            if (skip > total - len)
                skip = total - len;
            len += skip; /* idx is zeroed */
            x = len % w;
        } else { /* absolute: byte pixels follow */
            size_t count_px = total - len < byte ? total - len : byte;
            size_t need = rle4 ? (count_px + 1) / 2 : count_px;
            size_t got = pos < n ? (n - pos < need ? n - pos : need) : 0;
            if (rle4) {
                for (size_t i = 0; i < got; i++) {
                    idx[len++] = d[pos + i] >> 4;
                    if (i * 2 + 1 < count_px)
                        idx[len++] = d[pos + i] & 15;
                }
            } else {
                memcpy(idx + len, d + pos, got);
                len += got;
            }
            pos += got;
            if (got < need || len == total)
                break;
            x += byte;
            if (pos % 2 != 0)
                pos++;
        }
    }
    return len;
}

ims_status imsi_decode_bmp(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                           ims_error *err)
{
    bmp_info b;
    memset(&b, 0, sizeof b);
    size_t at = 0;
    ims_status st = bmp_read_header(data, size, &b, &at, err);
    if (!st)
        st = imsi_image_check_size(b.width, b.height, call, "BMP", 4, out, err);
    if (st)
        return st;
    int w = (int)b.width, h = (int)b.height;
    uint8_t *idx = NULL;
    if (b.compression == BMP_RLE8 || b.compression == BMP_RLE4) {
        size_t total = (size_t)w * (size_t)h; /* <= SIZE_MAX / 4: checked */
        idx = calloc(total, 1);
        if (!idx)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %d x %d BMP", w, h);
        if (rle_decode(data, size, at, b.compression == BMP_RLE4, (size_t)w, total, idx) < total) {
            free(idx);
            return ims_error_set(err, IMS_ERR_FORMAT, "BMP RLE data ends before the image is complete");
        }
        b.raw = b.gray ? BMP_RAW_L : BMP_RAW_P8; /* one byte a pixel now */
    } else {
        /* Rows of stride bytes (from the file's bits), read as raw_bits a pixel;
         * the last row needs only its pixels. */
        uint64_t stride = (((uint64_t)w * b.bits + 31) >> 3) & ~(uint64_t)3;
        uint64_t row_bytes = ((uint64_t)w * b.raw_bits + 7) / 8;
        if (row_bytes > stride) /* Pillow's raw decoder: negative padding */
            return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                                 "BMP of %u-bit pixels with a gray palette of more than 2 colors", b.bits);
        uint64_t need = stride * (uint64_t)(h - 1) + row_bytes;
        if (at > size || size - at < need)
            return ims_error_set(err, IMS_ERR_FORMAT, "BMP file is truncated (%llu bytes of pixels, %zu there)",
                                 (unsigned long long)need, at <= size ? size - at : 0);
    }
    if ((st = imsi_image_alloc(out, w, h, "BMP", err)) != IMS_OK) {
        free(idx);
        return st;
    }
    size_t stride = idx ? (size_t)w : ((((size_t)w * (size_t)b.bits + 31) >> 3) & ~(size_t)3);
    const unsigned char *src = idx ? idx : data + at;
    for (int r = 0; r < h; r++) { /* r: the row's place in the data */
        int y = b.top_down ? r : h - 1 - r;
        unpack_row(&b, src + (size_t)r * stride, w, out->pixels + (size_t)y * (size_t)w * 3);
    }
    free(idx);
    return IMS_OK;
}
