/* pool_normalize.c: the pool_normalize op (engine/backend/backend.h) on the
 * CPU: sentence embeddings from the last hidden state. Mean pooling averages
 * the tokens the attention mask keeps, [CLS] and [SEP] included. All sums in
 * double.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <math.h>

size_t imsi_cpu_pool_normalize_scratch_bytes(int h, int threads)
{
    return cpu_slices_bytes((size_t)h * sizeof(double), threads);
}

void imsi_cpu_pool_normalize(const void *x, const int32_t *lengths, float *y, int f16, int cls, int normalize, int b,
                             int t, int h, void *scratch, int threads)
{
    size_t slice = cpu_slices_bytes((size_t)h * sizeof(double), 1);
    #pragma omp parallel num_threads(threads) if ((int64_t)b * t * h > CPU_PARALLEL_MIN)
    {
        double *acc = (double *)((char *)scratch + slice * (size_t)cpu_thread_index()); /* (h) */
        #pragma omp for schedule(static)
        for (int bi = 0; bi < b; bi++) {
            int len = lengths[bi] < 1 ? 1 : lengths[bi] > t ? t : lengths[bi];
            int n = cls ? 1 : len;
            for (int i = 0; i < h; i++)
                acc[i] = 0.0;
            for (int s = 0; s < n; s++) {
                size_t at = ((size_t)bi * t + s) * h;
                for (int i = 0; i < h; i++)
                    acc[i] += f16 ? ims_f16_to_f32(((const uint16_t *)x)[at + i]) : ((const float *)x)[at + i];
            }
            double ss = 0.0;
            for (int i = 0; i < h; i++) {
                acc[i] /= n;
                ss += acc[i] * acc[i];
            }
            double scale = 1.0;
            if (normalize)
                scale = ss > 0.0 && isfinite(ss) ? 1.0 / sqrt(ss) : 0.0;
            for (int i = 0; i < h; i++)
                y[(size_t)bi * h + i] = (float)(acc[i] * scale);
        }
    }
}
