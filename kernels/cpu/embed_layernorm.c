/* embed_layernorm.c: the embed_layernorm op (engine/backend/backend.h) on the
 * CPU: BERT embeddings (word + position + token type 0) and LayerNorm,
 * statistics in double (two passes over the row). An
 * id outside [0, vocab) reads row 0 ([PAD]): the engine checks ids on the host,
 * this only keeps a bad id from reading out of bounds.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <stdlib.h>

void imsi_cpu_embed_layernorm(const int32_t *ids, const float *word, const float *pos, const float *type0,
                              const float *gamma, const float *beta, double eps, void *y, int y_f16, int b, int t,
                              int h, int vocab)
{
    #pragma omp parallel if ((int64_t)b * t * h > CPU_PARALLEL_MIN)
    {
        double *row = malloc((size_t)h * sizeof *row);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < (int64_t)b * t; r++) {
            if (!row)
                continue;
            int id = ids[r];
            if (id < 0 || id >= vocab)
                id = 0;
            const float *we = word + (size_t)id * h;  /* (H) */
            const float *pe = pos + (size_t)(r % t) * h; /* (H) */
            for (int i = 0; i < h; i++)
                row[i] = (double)we[i] + (double)pe[i] + (double)type0[i];
            size_t at = (size_t)r * h;
            imsi_cpu_layernorm_row(row, h, eps, gamma, beta,
                                   y_f16 ? (void *)((uint16_t *)y + at) : (void *)((float *)y + at), y_f16);
        }
        free(row);
    }
}
