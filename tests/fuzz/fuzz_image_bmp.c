/* fuzz_image_bmp.c: libFuzzer target for the BMP decoder entry
 * (imsi_decode_bmp, engine/image/decode_bmp.c); seeds in tests/fuzz/seeds/image_bmp/. */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decoder(imsi_decode_bmp, data, size);
}
