/* embed_layernorm.c: the embed_layernorm op (engine/backend/backend.h) on the
 * CPU: BERT embeddings (word + position + token type 0) and LayerNorm,
 * statistics in double (two passes over the row). Every id is checked before
 * anything is written: an id outside the vocabulary is reported, never read.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

size_t imsi_cpu_embed_layernorm_scratch_bytes(int h, int threads)
{
    return cpu_slices_bytes((size_t)h * sizeof(double), threads);
}

int64_t imsi_cpu_embed_layernorm(const int32_t *ids, const float *word, const float *pos, const float *type0,
                                 const float *gamma, const float *beta, double eps, void *y, int y_f16, int b, int t,
                                 int h, int vocab, void *scratch, int threads)
{
    int64_t tokens = (int64_t)b * t;
    for (int64_t r = 0; r < tokens; r++) /* one compare per token: noise beside the row's 3 H loads */
        if (ids[r] < 0 || ids[r] >= vocab)
            return r;
    size_t slice = cpu_slices_bytes((size_t)h * sizeof(double), 1);
    #pragma omp parallel num_threads(threads) if (tokens * h > CPU_PARALLEL_MIN)
    {
        double *row = (double *)((char *)scratch + slice * (size_t)cpu_thread_index()); /* (h) */
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < tokens; r++) {
            const float *we = word + (size_t)ids[r] * h;    /* (H) */
            const float *pe = pos + (size_t)(r % t) * h;    /* (H) */
            for (int i = 0; i < h; i++)
                row[i] = (double)we[i] + (double)pe[i] + (double)type0[i];
            size_t at = (size_t)r * h;
            imsi_cpu_layernorm_row(row, h, eps, gamma, beta,
                                   y_f16 ? (void *)((uint16_t *)y + at) : (void *)((float *)y + at), y_f16);
        }
    }
    return -1;
}
