/* image/decode.c: image files -> RGB8 (HWC), byte-identical to Pillow's
 * Image.open(f).convert('RGB') (then ImageOps.exif_transpose when asked):
 * the format sniffed by content and dispatched (WebP, TIFF, GIF and BMP to
 * image/decode_<format>.c, see image/decode_formats.h), JPEG and PNG here.
 *
 * - JPEG: the libjpeg API of libjpeg-turbo, with Pillow's settings (libjpeg's
 *   defaults: accurate integer IDCT, fancy upsampling; any sampling factors).
 *   Gray -> replicated; CMYK and YCCK decode to CMYK, which Pillow always
 *   reads as Adobe-inverted ("CMYK;I") and converts with its integer cmyk2rgb.
 *   Every libjpeg warning is seen: a truncated JPEG ("Premature end of JPEG
 *   file", at any point, even between the scans of a progressive file) is
 *   REFUSED, as Pillow refuses it by default (LOAD_TRUNCATED_IMAGES = False:
 *   "image file is truncated"); other warnings (extraneous bytes, ...) are
 *   tolerated as Pillow tolerates them. A progressive file of more than
 *   JPEG_MAX_SCANS scans is refused (a decode-time bomb), and a stream of
 *   tables only is not an image.
 * - PNG: libpng 1.6 from memory; every CRC error is an error (stricter than
 *   Pillow, which never checks IDAT's CRC); sub-8-bit samples
 *   are expanded by libpng (bit replication, as Pillow's L;1/L;2/L;4);
 *   16-bit samples are reduced here as Pillow does: RGB(A)/LA take the high
 *   byte, plain 16-bit gray (Pillow's I;16) is clipped to 255. Alpha (and
 *   tRNS) is dropped, never composited.
 * - Orientation, as Pillow's getexif() finds it for exif_transpose: IFD0
 *   tag 0x0112 of the JPEG's Exif APP1 payloads (concatenated, as Pillow
 *   does) or of the PNG's eXIf chunk, both byte orders, every read
 *   bounds-checked; when EXIF has no orientation tag, XMP's
 *   tiff:Orientation (JPEG APP1 XMP, PNG "XML:com.adobe.xmp" text). Not
 *   read: PNG "Raw profile type exif" text chunks.
 * - Limits (Pillow's decompression-bomb check): width * height over
 *   max_pixels is refused before any allocation that depends on it; over
 *   warn_pixels the image decodes with IMS_IMAGE_WARNING_LARGE.
 */
#include "imgsearch.h"

#include "core/error.h"
#include "core/file_map.h"
#include "image/decode_formats.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

void ims_decode_options_init(ims_decode_options *o)
{
    memset(o, 0, sizeof *o); /* fields added later (budget) start empty */
    o->max_pixels = IMS_DECODE_MAX_PIXELS;
    o->apply_exif_orientation = 1;
    o->warn_pixels = IMS_DECODE_WARN_PIXELS;
}

const char *ims_image_format_name(ims_image_format format)
{
    switch (format) {
    case IMS_IMAGE_FORMAT_JPEG: return "JPEG";
    case IMS_IMAGE_FORMAT_PNG: return "PNG";
    case IMS_IMAGE_FORMAT_WEBP: return "WebP";
    case IMS_IMAGE_FORMAT_TIFF: return "TIFF";
    case IMS_IMAGE_FORMAT_GIF: return "GIF";
    case IMS_IMAGE_FORMAT_BMP: return "BMP";
    default: return "unknown";
    }
}

/* The signatures Pillow's plugins accept for these formats (TIFF: classic
 * and BigTIFF, both byte orders; not Pillow's lenient "MM*\0" / "II\0*",
 * which libtiff refuses). */
ims_image_format ims_image_sniff(const void *data, size_t size)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *p = data;
    if (size >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return IMS_IMAGE_FORMAT_JPEG;
    if (size >= 8 && memcmp(p, png_sig, 8) == 0)
        return IMS_IMAGE_FORMAT_PNG;
    if (size >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return IMS_IMAGE_FORMAT_WEBP;
    if (size >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0 || memcmp(p, "II+\0", 4) == 0 ||
                      memcmp(p, "MM\0+", 4) == 0))
        return IMS_IMAGE_FORMAT_TIFF;
    if (size >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return IMS_IMAGE_FORMAT_GIF;
    if (size >= 2 && p[0] == 'B' && p[1] == 'M')
        return IMS_IMAGE_FORMAT_BMP;
    return IMS_IMAGE_FORMAT_UNKNOWN;
}

void ims_image_free(ims_image *img)
{
    if (!img)
        return;
    imsi_image_clear(img);
}

/* Names formats we recognize but do not decode, so the message says which. */
static const char *unsupported_name(const unsigned char *p, size_t n)
{
    if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0)
        return "HEIF/AVIF";
    if (n >= 4 && memcmp(p, "8BPS", 4) == 0)
        return "Photoshop (PSD)";
    if (n >= 12 && memcmp(p, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0)
        return "JPEG 2000";
    return NULL;
}

/* Walks JPEG markers up to the first scan, as Pillow's JpegImagePlugin:
 * the Exif APP1 payloads concatenated (the first keeps its "Exif\0\0"), else
 * the last XMP APP1. Returns the orientation, 0 for none or -1 for no memory. */
static int jpeg_orientation(const unsigned char *p, size_t n)
{
    static const char xmp_ns[] = "http://ns.adobe.com/xap/1.0/";
    size_t xmp_ns_len = sizeof xmp_ns; /* with its NUL */
    unsigned char *exif = NULL;
    size_t exif_len = 0;
    const unsigned char *xmp = NULL;
    size_t xmp_len = 0;
    size_t i = 2;
    while (i + 4 <= n) {
        if (p[i] != 0xff)
            break;
        unsigned m = p[i + 1];
        if (m == 0xff) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) {
            i += 2;
            continue;
        }
        if (m == 0xda || m == 0xd9)
            break;
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (len < 2 || len > n - i - 2)
            break;
        const unsigned char *s = p + i + 4;
        size_t slen = len - 2;
        if (m == 0xe1 && slen >= 6 && memcmp(s, "Exif\0\0", 6) == 0) {
            size_t skip = exif ? 6 : 0; /* exif_len + slen <= n: no overflow */
            unsigned char *grown = realloc(exif, exif_len + slen - skip + 1);
            if (!grown) {
                free(exif);
                return -1;
            }
            exif = grown;
            memcpy(exif + exif_len, s + skip, slen - skip);
            exif_len += slen - skip;
        } else if (m == 0xe1 && slen >= xmp_ns_len && memcmp(s, xmp_ns, xmp_ns_len) == 0) {
            xmp = s + xmp_ns_len, xmp_len = slen - xmp_ns_len;
        }
        i += 2 + len;
    }
    int o = exif ? imsi_exif_orientation(exif, exif_len) : 0;
    free(exif);
    if (!o && xmp)
        o = imsi_xmp_orientation(xmp, xmp_len);
    return o;
}

/* 1 if the data ends inside a marker segment or before the first scan: libjpeg
 * then reads its fake EOI as table bytes and reports a bogus table, which
 * would hide the real cause. */
static int jpeg_ends_before_scan(const unsigned char *p, size_t n)
{
    size_t i = 2;
    while (i + 2 <= n) {
        if (p[i] != 0xff)
            return 0; /* garbage between markers: not truncation */
        unsigned m = p[i + 1];
        if (m == 0xff) {
            i++;
            continue;
        }
        if (m == 0xda)
            return 0;
        if (m == 0xd8 || (m >= 0xd0 && m <= 0xd7) || m == 0x01) {
            i += 2;
            continue;
        }
        if (m == 0xd9)
            return 0;
        if (n - i < 4)
            return 1;
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (len > n - i - 2)
            return 1;
        i += 2 + len;
    }
    return 1;
}

/* ---- JPEG ------------------------------------------------------------------------- */

/* In place, 4 -> 3 bytes per pixel: Pillow's CMYK;I unpack (invert) then cmyk2rgb. */
static void cmyk_to_rgb(uint8_t *px, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = px + i * 4;
        uint8_t rgb[3];
        imsi_cmyk_pixel_to_rgb(255 - s[0], 255 - s[1], 255 - s[2], 255 - s[3], rgb);
        memcpy(px + i * 3, rgb, 3);
    }
}

/* A decode stops on the first error (longjmp out of libjpeg) and records
 * every warning: TurboJPEG 2.x kept only the last one, so a truncation
 * warning could be hidden behind a later one and a broken file accepted. */
typedef struct jpeg_guard {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int truncated;       /* libjpeg ran out of data (its "Premature end of JPEG file") */
    int too_many_scans;  /* a progressive file past JPEG_MAX_SCANS */
    char first_warning[JMSG_LENGTH_MAX];
} jpeg_guard;

/* Scans a progressive JPEG may have. Real files have about 10; each scan costs
 * a pass over the coefficients, so a file of 9,000 tiny scans once took 47 s
 * of one decode thread (libjpeg-turbo 3's TurboJPEG has a scan limit for it). */
#define JPEG_MAX_SCANS 1000

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    longjmp(g->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    if (level >= 0)
        return; /* trace messages */
    if (cinfo->err->msg_code == JWRN_JPEG_EOF)
        g->truncated = 1;
    if (!g->first_warning[0])
        cinfo->err->format_message(cinfo, g->first_warning);
    cinfo->err->num_warnings++;
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    if (((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        g->too_many_scans = 1;
        longjmp(g->jump, 1);
    }
}

static ims_status decode_jpeg(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                              ims_error *err)
{
    const ims_decode_options *o = call->o;
    if (size > (unsigned long)-1)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "JPEG of %zu bytes is too large", size);
    struct jpeg_decompress_struct cinfo;
    jpeg_guard g;
    memset(&g, 0, sizeof g);
    cinfo.err = jpeg_std_error(&g.pub);
    g.pub.error_exit = jpeg_on_error;
    g.pub.emit_message = jpeg_on_message;
    /* Locals changed after setjmp and read after longjmp must be volatile. */
    uint8_t *volatile px = NULL;
    volatile ims_status st = IMS_OK;
    volatile int in_header = 1;
    if (setjmp(g.jump)) {
        char why[JMSG_LENGTH_MAX];
        cinfo.err->format_message((j_common_ptr)&cinfo, why);
        if (g.too_many_scans)
            st = ims_error_set(err, IMS_ERR_FORMAT, "JPEG with more than %d scans (a decode-time bomb): skipped",
                               JPEG_MAX_SCANS);
        else if (in_header && jpeg_ends_before_scan(data, size))
            st = ims_error_set(err, IMS_ERR_FORMAT, "JPEG file is truncated (in its header: %s)", why);
        else if (st == IMS_OK)
            st = ims_error_set(err, IMS_ERR_FORMAT, "bad JPEG data: %s", why);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    g.progress.progress_monitor = jpeg_on_progress;
    cinfo.progress = &g.progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    if (jpeg_read_header(&cinfo, FALSE) != JPEG_HEADER_OK) {
        st = ims_error_set(err, IMS_ERR_FORMAT, "JPEG holds only tables, no image");
        goto done;
    }
    in_header = 0;
    /* libjpeg holds a progressive file's coefficients (2 bytes a sample) beside the pixels. */
    unsigned work = (unsigned)(cinfo.num_components > 3 ? cinfo.num_components : 3) +
                    (cinfo.progressive_mode ? 2u * (unsigned)cinfo.num_components : 0u);
    if ((st = imsi_image_check_size(cinfo.image_width, cinfo.image_height, call, "JPEG", work, out, err)) != IMS_OK)
        goto done;
    /* Pillow's reading: libjpeg's defaults (accurate integer IDCT, fancy
     * upsampling); CMYK and YCCK come out as CMYK, converted below. */
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height, bpp = (size_t)cinfo.output_components;
    /* 4 bytes per pixel at most: the later in-place widening to RGB fits. */
    px = malloc(w * h * (bpp > 3 ? bpp : 3));
    if (!px) {
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %zu x %zu JPEG", w, h);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * w * bpp;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (g.truncated) { /* Pillow refuses it: "image file is truncated" */
        st = ims_error_set(err, IMS_ERR_FORMAT, "JPEG file is truncated (%s)", g.first_warning);
        goto done;
    }
    /* Other warnings (extraneous bytes, ...): the whole image decoded; Pillow accepts it too. */
    size_t npx = w * h;
    if (bpp == 1) {
        for (size_t i = npx; i-- > 0;) { /* backward: pixel i is read before 3i.. is written */
            uint8_t v = px[i];
            px[i * 3] = v, px[i * 3 + 1] = v, px[i * 3 + 2] = v;
        }
    } else if (cmyk) {
        cmyk_to_rgb(px, npx);
    }
    out->width = (int)w, out->height = (int)h, out->pixels = px;
    px = NULL;
    if (o->apply_exif_orientation) {
        int orientation = jpeg_orientation(data, size);
        st = orientation < 0 ? ims_error_set(err, IMS_ERR_NOMEM, "out of memory reading EXIF")
                             : imsi_image_orient(out, orientation, err);
        if (st != IMS_OK)
            ims_image_free(out);
    }
done:
    free(px);
    jpeg_destroy_decompress(&cinfo);
    return st;
}

/* ---- PNG -------------------------------------------------------------------------- */

typedef struct png_src {
    const unsigned char *data;
    size_t size, pos;
    char msg[200];
} png_src;

static void png_read_mem(png_structp png, png_bytep dst, png_size_t n)
{
    png_src *s = png_get_io_ptr(png);
    if (n > s->size - s->pos)
        png_error(png, "PNG file is truncated");
    memcpy(dst, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* The library never prints: libpng's warnings are dropped. */
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* One pixel of libpng output (1..4 channels, 8 or 16 bits big-endian) -> RGB8.
 * All inputs are read before the first output byte is written (in place). */
static void png_pixel_to_rgb(const uint8_t *in, int channels, int depth16, uint8_t *out)
{
    uint8_t r, g, b;
    if (channels <= 2) {
        if (depth16 && channels == 1) /* Pillow's I;16 -> RGB clips to 255 */
            r = in[0] ? 255 : in[1];
        else /* L, LA, LA;16B (the high byte) */
            r = in[0];
        g = b = r;
    } else {
        size_t s = depth16 ? 2 : 1; /* RGB(A);16B: the high byte */
        r = in[0], g = in[s], b = in[2 * s];
    }
    out[0] = r, out[1] = g, out[2] = b;
}

/* Pillow's PNG orientation: the eXIf chunk, else the XMP text (last wins). */
static int png_orientation(png_structp png, png_infop info)
{
    png_uint_32 exif_len = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(png, info, &exif_len, &exif) && exif) {
        int found = imsi_exif_orientation(exif, exif_len);
        if (found)
            return found;
    }
    png_textp text = NULL;
    int ntext = 0, o = 0;
    png_get_text(png, info, &text, &ntext);
    for (int i = 0; i < ntext; i++)
        if (text[i].key && strcmp(text[i].key, "XML:com.adobe.xmp") == 0 && text[i].text)
            o = imsi_xmp_orientation((const unsigned char *)text[i].text,
                                text[i].compression > 0 ? text[i].itxt_length : text[i].text_length);
    return o;
}

static ims_status decode_png(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                             ims_error *err)
{
    const ims_decode_options *o = call->o;
    png_src src = {data, size, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png)
        return ims_error_set(err, IMS_ERR_NOMEM, "PNG: cannot start the decoder");
    png_infop info = png_create_info_struct(png);
    /* Locals changed after setjmp and read after longjmp must be volatile. */
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile ims_status st = IMS_OK;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return ims_error_set(err, IMS_ERR_NOMEM, "PNG: cannot start the decoder");
    }
    if (setjmp(png_jmpbuf(png))) {
        if (st == IMS_OK)
            st = ims_error_set(err, IMS_ERR_FORMAT, "bad PNG: %s", src.msg);
        goto done;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((st = imsi_image_check_limits(w, h, o, "PNG", out, err)) != IMS_OK)
        goto done; /* the limits first; the memory once the transforms say how much */
    int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info), depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (depth != 8 && depth != 16) ||
        rowbytes != (size_t)w * (size_t)channels * (size_t)(depth / 8)) {
        st = ims_error_set(err, IMS_ERR_FORMAT, "PNG: unexpected row layout (%d channels, %d bits)", channels, depth);
        goto done;
    }
    /* The rows and the RGB result share one buffer: the wider of the two a pixel. */
    if ((st = imsi_image_check_size(w, h, call, "PNG", (unsigned)(channels * (depth / 8)), out, err)) != IMS_OK)
        goto done;
    /* The buffer holds both the libpng rows and the RGB8 result (converted in
     * place). rowbytes <= w * 8 and w * h <= SIZE_MAX / 4 (imsi_image_check_size), but h
     * rows may still overflow on 32-bit machines: check. */
    size_t step = (size_t)channels * (size_t)(depth / 8), row_max = rowbytes > (size_t)w * 3 ? rowbytes : (size_t)w * 3;
    if (row_max > SIZE_MAX / h) {
        st = ims_error_set(err, IMS_ERR_NOMEM, "PNG of %u x %u is too large for this machine", (unsigned)w, (unsigned)h);
        goto done;
    }
    px = malloc(row_max * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) {
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %u x %u PNG", (unsigned)w, (unsigned)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, info); /* eXIf and text chunks may follow the image data */
    /* In place, pixel i at i * step -> i * 3. Each pixel is read before it is
     * written; going forward when step >= 3 (outputs trail inputs) and
     * backward when step < 3 (outputs lead inputs) never clobbers an unread one. */
    size_t n = (size_t)w * h;
    if (step >= 3)
        for (size_t i = 0; i < n; i++)
            png_pixel_to_rgb(px + i * step, channels, depth == 16, px + i * 3);
    else
        for (size_t i = n; i-- > 0;)
            png_pixel_to_rgb(px + i * step, channels, depth == 16, px + i * 3);
    out->width = (int)w, out->height = (int)h;
    out->pixels = px;
    px = NULL;
    if (o->apply_exif_orientation && (st = imsi_image_orient(out, png_orientation(png, info), err)) != IMS_OK)
        ims_image_free(out);
done:
    free(rows);
    free(px);
    png_destroy_read_struct(&png, &info, NULL);
    return st;
}

/* ---- Entry points ------------------------------------------------------------------- */

ims_status ims_image_decode(const void *data, size_t size, const ims_decode_options *o, ims_image *out,
                            ims_error *err)
{
    ims_decode_options def;
    if (!o) {
        ims_decode_options_init(&def);
        o = &def;
    }
    imsi_decode_call call = {o, 0};
    if (!out || (!data && size))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "ims_image_decode: NULL argument");
    out->width = out->height = 0;
    out->pixels = NULL;
    out->warnings = 0;
    if (size == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "empty file (0 bytes)");
    ims_status st;
    switch (ims_image_sniff(data, size)) {
    case IMS_IMAGE_FORMAT_JPEG: st = decode_jpeg(data, size, &call, out, err); break;
    case IMS_IMAGE_FORMAT_PNG: st = decode_png(data, size, &call, out, err); break;
    case IMS_IMAGE_FORMAT_WEBP: st = imsi_decode_webp(data, size, &call, out, err); break;
    case IMS_IMAGE_FORMAT_TIFF: st = imsi_decode_tiff(data, size, &call, out, err); break;
    case IMS_IMAGE_FORMAT_GIF: st = imsi_decode_gif(data, size, &call, out, err); break;
    case IMS_IMAGE_FORMAT_BMP: st = imsi_decode_bmp(data, size, &call, out, err); break;
    default: {
        const char *name = unsupported_name(data, size);
        if (name)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                                 "%s images are not supported (only JPEG, PNG, WebP, TIFF, GIF and BMP)", name);
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "not an image file this decoder knows (JPEG, PNG, WebP, TIFF, GIF, BMP): unknown signature");
    }
    }
    imsi_decode_call_release(&call); /* the working memory is gone; the RGB result is the caller's */
    if (st != IMS_OK)
        imsi_image_clear(out); /* a decoder's contract is to leave none; be sure */
    return st;
}

ims_status ims_image_decode_file(const char *path, const ims_decode_options *o, ims_image *out, ims_error *err)
{
    if (!path || !out)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "ims_image_decode_file: NULL argument");
    out->width = out->height = 0;
    out->pixels = NULL;
    out->warnings = 0;
    /* A regular file only, mapped: a FIFO or a device is refused, never waited on or read forever. */
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (st == IMS_OK)
        st = ims_image_decode(map.data, map.size, o, out, err);
    imsi_file_map_close(&map);
    if (st != IMS_OK)
        imsi_error_prefix(err, st, "%s", path);
    return st;
}
