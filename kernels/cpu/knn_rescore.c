/* knn_rescore.c: the knn_rescore op (engine/backend/backend.h) on the CPU: the
 * exact pass of the f16 prefilter (engine/index/knn.c).
 *
 * Each candidate's score is the fp64 dot product of the f32 query and the row
 * as stored, summed in column order and rounded once to f32: the score
 * engine/index/search.c gives a row, so it does not depend on the row's place
 * in a table. The candidates are then sorted (score desc, row asc) and the
 * first min(k, c) kept. The CUDA twin (kernels/cuda/knn_rescore.cu) sums in
 * another order, so a score may differ in its last bit there.
 */
#include "ops_cpu.h"

#include "kernels/cuda/knn_tile.h"
#include "imgsearch.h"

#include <math.h>
#include <stdlib.h>

typedef struct knn_scored {
    float s;
    int32_t id;
} knn_scored;

static int scored_order(const void *pa, const void *pb)
{
    const knn_scored *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s > b->s ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static float exact_dot(const float *q, const float *row_f32, const uint16_t *row_f16, int d)
{
    double sum = 0.0;
    if (row_f16)
        for (int i = 0; i < d; i++)
            sum += (double)q[i] * (double)ims_f16_to_f32(row_f16[i]);
    else
        for (int i = 0; i < d; i++)
            sum += (double)q[i] * (double)row_f32[i];
    return (float)sum;
}

size_t imsi_cpu_knn_rescore_scratch_bytes(int c) { return (size_t)(c > 0 ? c : 1) * sizeof(knn_scored); }

void imsi_cpu_knn_rescore(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                          int b, const int32_t *cand, const float *cand_scores, int c, const float *margin, int k,
                          int32_t *ids, float *scores, int32_t *ok, void *scratch)
{
    knn_scored *list = scratch;
    int kk = k < c ? k : c;
    for (int q = 0; q < b; q++) {
        const float *qv = queries + (size_t)q * d;
        const int32_t *cq = cand + (size_t)q * c;
        int m = 0;
        for (int j = 0; j < c; j++) {
            int32_t id = cq[j];
            if (id < 0 || id >= n) /* never from knn_select; dropped rather than read out of bounds */
                continue;
            const float *r32 = table_f32 ? table_f32 + (size_t)id * d : NULL;
            const uint16_t *r16 = table_f16 ? table_f16 + (size_t)id * d : NULL;
            list[m++] = (knn_scored){exact_dot(qv, r32, r16, d), id};
        }
        qsort(list, (size_t)m, sizeof *list, scored_order);
        for (int j = 0; j < kk; j++) {
            ids[(size_t)q * kk + j] = j < m ? list[j].id : -1;
            scores[(size_t)q * kk + j] = j < m ? list[j].s : -INFINITY;
        }
        ok[q] = m == c && imsi_knn_prefilter_holds(cand_scores + (size_t)q * c, c, n, kk, margin[q]);
    }
}
