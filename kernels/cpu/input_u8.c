/* input_u8.c: the network's input step: uint8 RGB pixels (N, H, W, 3) ->
 * f32 (N, H, W, 3), y = x * scale[c] + shift[c] per channel (the image
 * loader's bytes, normalized as x / 255, then (x - mean) / std: scale =
 * 1 / (255 std), shift = -mean / std). */
#include "ops_cpu.h"

void imsi_cpu_input_u8(const uint8_t *x, size_t pixels, const float scale[3], const float shift[3], float *y)
{
    #pragma omp parallel for schedule(static)
    for (long long p = 0; p < (long long)pixels; p++)
        for (int c = 0; c < 3; c++)
            y[(size_t)p * 3 + c] = (float)x[(size_t)p * 3 + c] * scale[c] + shift[c];
}
