/* bias_act.c: the bias_act op (engine/backend/backend.h) on the CPU. GELU as
 * PyTorch's default, 0.5 x (1 + erf(x / sqrt 2)), evaluated in double.
 *
 * Two paths. The strict one (the reference the GPU is tested against) calls
 * libm's erf per element, in an OpenMP loop. The fast one (f32 only, the CPU
 * encoder's) computes the same double formula with fast_math.h's erf (error
 * < 1e-11, so the f32 results match but for rare rounding ties) in loops GCC
 * vectorizes, on the calling thread: beside OpenBLAS's threads a parallel
 * region costs more in spinning than it saves (bench/RESULTS.md).
 */
#include "ops_cpu.h"

#include "fast_math.h"
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

/* One row: y = GELU(x + bias) (gelu) or x + bias; x and y may be the same. */
CPU_SIMD_CLONES static void bias_gelu_row(const float *x, const float *bias, float *y, int n)
{
    #pragma omp simd
    for (int c = 0; c < n; c++) {
        double v = (double)x[c] + bias[c];
        y[c] = (float)(0.5 * v * (1.0 + cpu_erf_f64(v * 0.70710678118654752440)));
    }
}

CPU_SIMD_CLONES static void bias_row(const float *x, const float *bias, float *y, int n)
{
    #pragma omp simd
    for (int c = 0; c < n; c++)
        y[c] = (float)((double)x[c] + bias[c]);
}

void imsi_cpu_bias_act_fast(const float *x, const float *bias, float *y, int gelu, int m, int n)
{
    for (int r = 0; r < m; r++) {
        size_t at = (size_t)r * n;
        if (gelu)
            bias_gelu_row(x + at, bias, y + at, n);
        else
            bias_row(x + at, bias, y + at, n);
    }
}
