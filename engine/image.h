/* image.h: the image input pipeline: decode (JPEG, PNG) -> RGB8 -> the
 * network's input, exactly as the reference pipelines compute it.
 *
 * Layouts: decoded images and uint8 outputs are HWC (row-major, RGB
 * interleaved); float outputs are CHW (NCHW for a batch) or HWC (NHWC).
 *
 * - image_decode.c: content sniffing, libjpeg-turbo (TurboJPEG) and libpng,
 *   every color type converted to RGB as Pillow's convert('RGB') does, EXIF
 *   orientation, limits, one-line errors for bad input.
 * - image_preprocess.c: torchvision mode (Pillow's antialiased bilinear resize
 *   of the short side, in Pillow's fixed-point arithmetic, then torchvision's
 *   center crop) and fid mode (torch's bilinear interpolate, align_corners
 *   False, no antialias, then 2x - 1), and normalization.
 * - image_loader.c: a pool of decode threads filling batches (pinned host
 *   memory when a CUDA backend is given) while the previous batch is in use.
 */
#ifndef IMS_IMAGE_H
#define IMS_IMAGE_H

#include "imgsearch.h"

/* ---- Decode ------------------------------------------------------------------- */

typedef struct ims_image {
    int width, height;
    uint8_t *pixels; /* (height, width, 3) RGB, owned (free with ims_image_free) */
} ims_image;

typedef enum ims_image_format {
    IMS_IMAGE_FORMAT_UNKNOWN = 0,
    IMS_IMAGE_FORMAT_JPEG,
    IMS_IMAGE_FORMAT_PNG,
} ims_image_format;

typedef struct ims_decode_options {
    uint64_t max_pixels;          /* width * height limit (decompression bombs); default 100,000,000 */
    int apply_exif_orientation;   /* default 1; torchvision's own pipeline ignores EXIF (0) */
} ims_decode_options;

void ims_decode_options_init(ims_decode_options *o);

/* The format by content (magic bytes), never by file name. */
ims_image_format ims_image_sniff(const void *data, size_t size);

/* Decodes and converts to RGB8. Bad input: IMS_ERR_FORMAT (or IMS_ERR_UNSUPPORTED,
 * IMS_ERR_NOMEM) with a one-line reason; never a crash. */
ims_status ims_image_decode(const void *data, size_t size, const ims_decode_options *o, ims_image *out,
                            ims_error *err);
/* Reads the file then decodes; messages start with the path. */
ims_status ims_image_decode_file(const char *path, const ims_decode_options *o, ims_image *out, ims_error *err);
void ims_image_free(ims_image *img);

/* ---- Preprocess ------------------------------------------------------------------ */

typedef enum ims_preprocess_mode {
    IMS_PREPROCESS_TORCHVISION = 0, /* resize short side 342 (Pillow bilinear, antialiased), center crop 299 */
    IMS_PREPROCESS_FID,             /* bilinear to 299 x 299 (torch, align_corners False, no antialias) */
} ims_preprocess_mode;

typedef enum ims_layout {
    IMS_LAYOUT_NCHW = 0,
    IMS_LAYOUT_NHWC,
} ims_layout;

/* torchvision mode up to the 8-bit image: Pillow's resize of the short side
 * to `resize` (the long side as torchvision computes it), then the center crop
 * of crop x crop. out: (crop, crop, 3), byte-identical to Pillow + torchvision. */
ims_status ims_preprocess_torchvision_u8(const ims_image *img, int resize, int crop, uint8_t *out, ims_error *err);

/* uint8 (h, w, 3) -> float: x / 255, then (x - mean[c]) / std[c], in layout. */
void ims_preprocess_normalize(const uint8_t *pixels, int h, int w, const float mean[3], const float std[3],
                              ims_layout layout, float *out);

/* fid mode: RGB8 -> [0, 1] -> bilinear size x size (align_corners False, no
 * antialias, as torch.nn.functional.interpolate) -> 2x - 1. out: float
 * (3, size, size) or (size, size, 3). */
ims_status ims_preprocess_fid(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err);

#endif /* IMS_IMAGE_H */
