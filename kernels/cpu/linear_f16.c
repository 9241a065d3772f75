/* linear_f16.c: the linear_f16 op (engine/backend/backend.h) on the CPU.
 *
 * The reference for cuBLAS's f16 GEMM with fp32 accumulation: both operands are
 * widened to f32 (exactly), multiplied by OpenBLAS sgemm, and y rounded to f16
 * once. Slow (it widens w on every call); tests and the CPU check of the GPU's
 * fp16 path use it, the CPU encoder runs fp32.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <cblas.h>
#include <stdlib.h>

int imsi_cpu_linear_f16(const uint16_t *x, const uint16_t *w, uint16_t *y, int m, int n, int k)
{
    float *xf = malloc((size_t)m * k * sizeof *xf), *wf = malloc((size_t)n * k * sizeof *wf);
    float *yf = malloc((size_t)m * n * sizeof *yf);
    if (!xf || !wf || !yf) {
        free(xf), free(wf), free(yf);
        return -1;
    }
    imsi_cpu_convert_f16_to_f32(x, xf, (size_t)m * k);
    imsi_cpu_convert_f16_to_f32(w, wf, (size_t)n * k);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, xf, k, wf, k, 0.0f, yf, n);
    imsi_cpu_convert_f32_to_f16(yf, y, (size_t)m * n);
    free(xf), free(wf), free(yf);
    return 0;
}
