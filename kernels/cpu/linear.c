/* linear.c: the linear op (engine/backend/backend.h) on the CPU through
 * OpenBLAS sgemm (w is (out, in), as PyTorch stores it).
 *
 * f32: one sgemm; a bias is first written into every row of y and the GEMM
 * adds onto it (beta = 1). f16, the reference for cuBLAS's f16 GEMM with fp32
 * accumulation: both operands are widened to f32 (exactly), the product (plus
 * the f32 bias) is summed in f32 by sgemm, and y is rounded to f16 once. Slow
 * (it widens w on every call); the tests and the CPU check of the GPU's fp16
 * path use it, the CPU encoder runs fp32.
 */
#include "ops_cpu.h"

#include <cblas.h>

/* y (m, n) f32 = x (m, k) . w (n, k)^T + bias (n) or NULL. */
static void linear_f32(const float *x, const float *w, const float *bias, float *y, int m, int n, int k)
{
    float beta = 0.0f;
    if (bias) {
        #pragma omp parallel for schedule(static)
        for (int r = 0; r < m; r++)
            for (int c = 0; c < n; c++)
                y[(size_t)r * n + c] = bias[c];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, beta, y, n);
}

size_t imsi_cpu_linear_scratch_bytes(int f16, int m, int n, int k)
{
    return f16 ? ((size_t)m * k + (size_t)n * k + (size_t)m * n) * sizeof(float) : 0;
}

void imsi_cpu_linear(const void *x, const void *w, const float *bias, void *y, int f16, int m, int n, int k,
                     void *scratch)
{
    if (!f16) {
        linear_f32(x, w, bias, y, m, n, k);
        return;
    }
    float *xf = scratch;              /* (m, k) */
    float *wf = xf + (size_t)m * k;   /* (n, k) */
    float *yf = wf + (size_t)n * k;   /* (m, n) */
    imsi_cpu_convert_f16_to_f32(x, xf, (size_t)m * k);
    imsi_cpu_convert_f16_to_f32(w, wf, (size_t)n * k);
    linear_f32(xf, wf, bias, yf, m, n, k);
    imsi_cpu_convert_f32_to_f16(yf, y, (size_t)m * n);
}
