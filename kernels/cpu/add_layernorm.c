/* add_layernorm.c: the add_layernorm op (engine/backend/backend.h) on the CPU,
 * the end of each BERT sublayer; also the LayerNorm row shared with
 * embed_layernorm. Sum and statistics in double, two passes.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <math.h>

static double load(const void *p, size_t i, int f16)
{
    return f16 ? (double)ims_f16_to_f32(((const uint16_t *)p)[i]) : (double)((const float *)p)[i];
}

void imsi_cpu_layernorm_row(const double *row, int h, double eps, const float *gamma, const float *beta, void *y,
                            int y_f16)
{
    double mean = 0.0;
    for (int i = 0; i < h; i++)
        mean += row[i];
    mean /= h;
    double var = 0.0;
    for (int i = 0; i < h; i++)
        var += (row[i] - mean) * (row[i] - mean);
    double inv = 1.0 / sqrt(var / h + eps);
    for (int i = 0; i < h; i++) {
        float v = (float)((row[i] - mean) * inv * gamma[i] + beta[i]);
        if (y_f16)
            ((uint16_t *)y)[i] = ims_f32_to_f16(v);
        else
            ((float *)y)[i] = v;
    }
}

size_t imsi_cpu_add_layernorm_scratch_bytes(int h, int threads)
{
    return cpu_slices_bytes((size_t)h * sizeof(double), threads);
}

void imsi_cpu_add_layernorm(const void *x, const float *bias, const void *residual, const float *gamma,
                            const float *beta, double eps, void *y, int f16, int m, int h, void *scratch,
                            int threads)
{
    size_t slice = cpu_slices_bytes((size_t)h * sizeof(double), 1);
    #pragma omp parallel num_threads(threads) if ((int64_t)m * h > CPU_PARALLEL_MIN)
    {
        double *row = (double *)((char *)scratch + slice * (size_t)cpu_thread_index()); /* (h) */
        #pragma omp for schedule(static)
        for (int r = 0; r < m; r++) {
            size_t at = (size_t)r * h;
            for (int i = 0; i < h; i++)
                row[i] = load(x, at + i, f16) + (bias ? bias[i] : 0.0) + load(residual, at + i, f16);
            imsi_cpu_layernorm_row(row, h, eps, gamma, beta, f16 ? (void *)((uint16_t *)y + at) : (void *)((float *)y + at),
                                   f16);
        }
    }
}
