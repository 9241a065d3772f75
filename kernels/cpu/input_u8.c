/* input_u8.c: the input_u8 op (engine/backend/backend.h) on the CPU: the
 * network's input step, the image loader's bytes normalized as x / 255, then
 * (x - mean) / std (scale = 1 / (255 std), shift = -mean / std). ISO C mode
 * (-std=c11) keeps GCC from contracting the multiply-add into an FMA. */
#include "ops_cpu.h"

void imsi_cpu_input_u8(const uint8_t *x, size_t pixels, const float scale[3], const float shift[3], float *y)
{
    #pragma omp parallel for schedule(static)
    for (long long p = 0; p < (long long)pixels; p++)
        for (int c = 0; c < 3; c++)
            y[(size_t)p * 3 + c] = (float)x[(size_t)p * 3 + c] * scale[c] + shift[c];
}
