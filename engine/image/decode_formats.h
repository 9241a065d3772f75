/* image/decode_formats.h: what the image decoders share (internal).
 *
 * image/decode.c sniffs a file's format by content and hands the bytes to its
 * decoder: JPEG and PNG there, WebP, TIFF, GIF and BMP in decode_<format>.c.
 * Each decoder's contract: data holds the whole file (size > 0, its signature
 * already matched); out is zeroed by the caller; on success out holds
 * (height, width, 3) RGB bytes as Pillow's Image.open(f).convert('RGB') gives
 * them (then ImageOps.exif_transpose when o->apply_exif_orientation); on
 * failure out stays empty and err says why in one line. Every decoder checks
 * width * height with imsi_image_check_size before any allocation that depends
 * on it.
 *
 * decode_util.c holds the helpers: the pixel limits, EXIF and XMP
 * orientation, rotation, Pillow's integer color arithmetic.
 */
#ifndef IMS_IMAGE_DECODE_FORMATS_H
#define IMS_IMAGE_DECODE_FORMATS_H

#include "imgsearch.h"

/* One decode: its options, and the decode memory it holds from o->budget
 * (reserved by imsi_image_check_size, given back by ims_image_decode). */
typedef struct imsi_decode_call {
    const ims_decode_options *o;
    uint64_t reserved;
} imsi_decode_call;

ims_status imsi_decode_webp(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                            ims_error *err);
ims_status imsi_decode_tiff(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                            ims_error *err);
ims_status imsi_decode_gif(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                           ims_error *err);
ims_status imsi_decode_bmp(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                           ims_error *err);

/* ---- decode_util.c ---- */

/* w x h against the options: empty, over max_pixels (refused, naming
 * --max-pixels), too large for size_t at 4 bytes a pixel or for int; over
 * warn_pixels sets IMS_IMAGE_WARNING_LARGE in out->warnings. Then reserves
 * w * h * work_bytes (the most the decoder will hold per pixel, its output
 * included) from the options' budget, waiting for it if others hold it.
 * `what` names the format in messages ("TIFF"). */
ims_status imsi_image_check_size(uint64_t w, uint64_t h, imsi_decode_call *call, const char *what,
                                 unsigned work_bytes, ims_image *out, ims_error *err);
/* The limits alone, for a decoder that learns its bytes a pixel later. */
ims_status imsi_image_check_limits(uint64_t w, uint64_t h, const ims_decode_options *o, const char *what,
                                   ims_image *out, ims_error *err);

/* Gives back what the call reserved (ims_image_decode, when the decoder returns). */
void imsi_decode_call_release(imsi_decode_call *call);

/* out->pixels = w * h * 3 bytes (after imsi_image_check_size); sets width and height. */
ims_status imsi_image_alloc(ims_image *out, int w, int h, const char *what, ims_error *err);

/* Frees the pixels and zeroes the image (ims_image_free, for the decoders). */
void imsi_image_clear(ims_image *img);

/* Orientation (0 absent, 1..8, 9 present but not a transform) of IFD0 tag
 * 0x0112 in an EXIF block (optionally "Exif\0\0"-prefixed) or a TIFF file,
 * read as Pillow's Exif.load does. */
int imsi_exif_orientation(const unsigned char *t, size_t n);
/* Pillow's XMP fallback: the first tiff:Orientation="D or tiff:Orientation>D; 0 if none. */
int imsi_xmp_orientation(const unsigned char *p, size_t n);
/* Applies orientation o (2..8; others do nothing) as Pillow's exif_transpose. */
ims_status imsi_image_orient(ims_image *img, int o, ims_error *err);

/* Pillow's MULDIV255: a * b / 255, rounded, in integers. */
static inline int imsi_muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* Pillow's cmyk2rgb (Convert.c) for plain (not inverted) CMYK: each channel
 * (255 - k) - c * (255 - k) / 255. */
static inline void imsi_cmyk_pixel_to_rgb(int c, int m, int y, int k, uint8_t *rgb)
{
    int nk = 255 - k;
    rgb[0] = (uint8_t)(nk - imsi_muldiv255(c, nk));
    rgb[1] = (uint8_t)(nk - imsi_muldiv255(m, nk));
    rgb[2] = (uint8_t)(nk - imsi_muldiv255(y, nk));
}

#endif /* IMS_IMAGE_DECODE_FORMATS_H */
