/* fuzz_decoder.h: the body of the per-format decoder fuzz targets
 * (fuzz_image_webp.c, _tiff, _gif, _bmp): each hands every input straight to
 * its format's decoder entry (image/decode_formats.h), signature or not, so
 * the fuzzer spends its time inside that decoder; fuzz_image.c covers the
 * sniffing front door. A 4-million pixel limit keeps memory bounded; an
 * image that decodes is read to its last byte and preprocessed.
 */
#ifndef IMS_FUZZ_DECODER_H
#define IMS_FUZZ_DECODER_H

#include "image/decode_formats.h"

#include <stdlib.h>

typedef ims_status (*fuzz_decode_fn)(const unsigned char *data, size_t size, imsi_decode_call *call,
                                     ims_image *out, ims_error *err);

static uint8_t fuzz_tv_out[299 * 299 * 3];

static int fuzz_decoder(fuzz_decode_fn decode, const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0; /* the decoders' contract: ims_image_decode refuses empty input before them */
    ims_decode_options o;
    ims_decode_options_init(&o);
    o.max_pixels = 4000000;
    o.warn_pixels = 1000000;
    for (int exif = 0; exif < 2; exif++) {
        o.apply_exif_orientation = exif;
        ims_image img = {0};
        ims_error err = {0};
        imsi_decode_call call = {&o, 0};
        if (decode(data, size, &call, &img, &err) != IMS_OK) {
            if (img.pixels || img.width || !err.msg[0])
                abort(); /* a failure leaves no image and always says why */
            continue;
        }
        if (img.width <= 0 || img.height <= 0 || (uint64_t)img.width * (uint64_t)img.height > o.max_pixels)
            abort();
        int large = (uint64_t)img.width * (uint64_t)img.height > o.warn_pixels;
        if (large != !!(img.warnings & IMS_IMAGE_WARNING_LARGE))
            abort();
        volatile uint8_t sink = img.pixels[(size_t)img.width * img.height * 3 - 1];
        (void)sink;
        (void)ims_preprocess_torchvision_u8(&img, 342, 299, fuzz_tv_out, &err);
        ims_image_free(&img);
    }
    return 0;
}

#endif /* IMS_FUZZ_DECODER_H */
