/* fuzz_image.c: libFuzzer target for the image decoder's front door (sniffing, then
 * JPEG, PNG, EXIF, and the WebP, TIFF, GIF and BMP decoders; each of those has
 * its own target too, fuzz_image_<format>.c).
 *
 * Each input is decoded with EXIF orientation on and off under a 4-million
 * pixel limit (so the fuzzer does not run out of memory); a decoded image is
 * then run through both preprocessing modes, which must accept any size the
 * decoder produces.
 */
#include "imgsearch.h"

#include <stdlib.h>

static float fid_out[3 * 299 * 299];
static uint8_t tv_out[299 * 299 * 3];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ims_decode_options o;
    ims_decode_options_init(&o);
    o.max_pixels = 4000000;
    for (int exif = 0; exif < 2; exif++) {
        o.apply_exif_orientation = exif;
        ims_image img;
        ims_error err;
        if (ims_image_decode(data, size, &o, &img, &err) != IMS_OK) {
            if (img.pixels || !err.msg[0])
                abort(); /* a failure leaves no image and always says why */
            return 0;
        }
        if (img.width <= 0 || img.height <= 0 || (uint64_t)img.width * (uint64_t)img.height > o.max_pixels)
            abort();
        volatile uint8_t sink = img.pixels[(size_t)img.width * img.height * 3 - 1];
        (void)sink;
        (void)ims_preprocess_torchvision_u8(&img, 342, 299, tv_out, &err);
        (void)ims_preprocess_fid(&img, 299, IMS_LAYOUT_NCHW, fid_out, &err);
        ims_image_free(&img);
    }
    return 0;
}
