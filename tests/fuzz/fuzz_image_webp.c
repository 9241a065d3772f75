/* fuzz_image_webp.c: libFuzzer target for the WebP decoder entry
 * (imsi_decode_webp, engine/image/decode_webp.c); seeds in tests/fuzz/seeds/image_webp/. */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decoder(imsi_decode_webp, data, size);
}
