/* linear.c: the linear op (engine/backend/backend.h) on the CPU through
 * OpenBLAS (w is (out, in), as PyTorch stores it). */
#include "ops_cpu.h"

#include <cblas.h>

void imsi_cpu_linear(const float *x, const float *w, const float *bias, float *y, int m, int n, int k)
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
