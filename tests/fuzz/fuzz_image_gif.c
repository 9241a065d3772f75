/* fuzz_image_gif.c: libFuzzer target for the GIF decoder entry
 * (imsi_decode_gif, engine/image/decode_gif.c); seeds in tests/fuzz/seeds/image_gif/. */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decoder(imsi_decode_gif, data, size);
}
