/* convert.c: the convert op (engine/backend/backend.h) on the CPU, with the
 * engine's exact round-to-nearest-even conversion. */
#include "ops_cpu.h"

#include "imgsearch.h"

void imsi_cpu_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n)
{
    #pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++)
        dst[i] = ims_f32_to_f16(src[i]);
}

void imsi_cpu_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    #pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++)
        dst[i] = ims_f16_to_f32(src[i]);
}
