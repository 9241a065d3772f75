/* bias_act.c: the bias_act op (engine/backend/backend.h) on the CPU. GELU as
 * PyTorch's default, 0.5 x (1 + erf(x / sqrt 2)), evaluated in double.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <math.h>

void imsi_cpu_bias_act(const void *x, const float *bias, void *y, int f16, int gelu, int m, int n)
{
    #pragma omp parallel for schedule(static) if ((int64_t)m * n > CPU_PARALLEL_MIN)
    for (int r = 0; r < m; r++) {
        for (int c = 0; c < n; c++) {
            size_t i = (size_t)r * n + c;
            double v = f16 ? ims_f16_to_f32(((const uint16_t *)x)[i]) : ((const float *)x)[i];
            v += bias[c];
            if (gelu)
                v = 0.5 * v * (1.0 + erf(v * 0.70710678118654752440));
            if (f16)
                ((uint16_t *)y)[i] = ims_f32_to_f16((float)v);
            else
                ((float *)y)[i] = (float)v;
        }
    }
}
