/* image/thumbnail.c: small JPEG previews of images, for people to look at
 * (search --html embeds them in a page; serve sends them).
 *
 * Layout: RGB8, HWC. The scaling is ims_image_resize (Pillow's antialiased
 * bilinear), the encoding TurboJPEG's: the same decoder, resampler and JPEG
 * library as the rest of the pipeline, nothing else to trust.
 */
#include "core/error.h"
#include "imgsearch.h"

#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* The largest long side a thumbnail may ask for: previews, not copies. */
#define THUMB_MAX_SIDE 4096

ims_status ims_image_thumbnail(const ims_image *img, int long_side, ims_image *out, ims_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || !out)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "thumbnail: empty image");
    if (long_side < 1 || long_side > THUMB_MAX_SIDE)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "thumbnail: long side %d is out of range 1..%d", long_side,
                             THUMB_MAX_SIDE);
    int w = img->width, h = img->height, lng = w > h ? w : h;
    if (long_side > lng)
        long_side = lng; /* never enlarged */
    /* the short side rounded to nearest, at least one pixel */
    int tw = w >= h ? long_side : (int)(((int64_t)w * long_side * 2 + lng) / (2 * (int64_t)lng));
    int th = h > w ? long_side : (int)(((int64_t)h * long_side * 2 + lng) / (2 * (int64_t)lng));
    tw = tw < 1 ? 1 : tw;
    th = th < 1 ? 1 : th;
    uint8_t *px = malloc((size_t)tw * (size_t)th * 3);
    if (!px)
        return ims_error_set(err, IMS_ERR_NOMEM, "thumbnail: out of memory for %d x %d", tw, th);
    ims_status st = ims_image_resize(img, tw, th, px, err);
    if (st != IMS_OK) {
        free(px);
        return st;
    }
    *out = (ims_image){.width = tw, .height = th, .pixels = px};
    return IMS_OK;
}

ims_status ims_image_encode_jpeg(const ims_image *img, int quality, uint8_t **jpeg, size_t *size, ims_error *err)
{
    if (jpeg)
        *jpeg = NULL;
    if (size)
        *size = 0;
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || !jpeg || !size)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "encode JPEG: empty image");
    if (quality < 1 || quality > 100)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "encode JPEG: quality %d is out of range 1..100", quality);
    if (img->width > 65535 || img->height > 65535)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "encode JPEG: %d x %d is larger than JPEG allows (65535)",
                             img->width, img->height);
    tjhandle tj = tjInitCompress();
    if (!tj)
        return ims_error_set(err, IMS_ERR_NOMEM, "encode JPEG: %s", tjGetErrorStr2(NULL));
    unsigned char *buf = NULL;
    unsigned long len = 0;
    ims_status st = IMS_OK;
    if (tjCompress2(tj, img->pixels, img->width, img->width * 3, img->height, TJPF_RGB, &buf, &len, TJSAMP_420,
                    quality, 0) != 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "encode JPEG: %s", tjGetErrorStr2(tj));
    /* into memory ims_free releases (tjAlloc's may be another allocator) */
    if (!st && !(*jpeg = malloc(len ? len : 1)))
        st = ims_error_set(err, IMS_ERR_NOMEM, "encode JPEG: out of memory for %lu bytes", len);
    if (!st) {
        memcpy(*jpeg, buf, len);
        *size = len;
    }
    tjFree(buf);
    tjDestroy(tj);
    return st;
}

ims_status ims_image_thumbnail_file(const char *path, const ims_decode_options *o, int long_side, int quality,
                                    uint8_t **jpeg, size_t *size, ims_error *err)
{
    if (jpeg)
        *jpeg = NULL;
    if (size)
        *size = 0;
    if (!path || !jpeg || !size)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "thumbnail: NULL argument");
    ims_decode_options defaults;
    ims_decode_options_init(&defaults);
    ims_image img = {0}, th = {0};
    ims_status st = ims_image_decode_file(path, o ? o : &defaults, &img, err);
    if (st)
        return st; /* the decoder's message names the path */
    st = ims_image_thumbnail(&img, long_side, &th, err);
    ims_image_free(&img);
    if (!st)
        st = ims_image_encode_jpeg(&th, quality, jpeg, size, err);
    ims_image_free(&th);
    return st ? imsi_error_prefix(err, st, "%s", path) : IMS_OK;
}
