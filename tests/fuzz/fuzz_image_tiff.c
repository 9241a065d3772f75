/* fuzz_image_tiff.c: libFuzzer target for the TIFF decoder entry
 * (imsi_decode_tiff, engine/image/decode_tiff.c); seeds in tests/fuzz/seeds/image_tiff/. */
#include "fuzz_decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decoder(imsi_decode_tiff, data, size);
}
