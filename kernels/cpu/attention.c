/* attention.c: multi-head self-attention with a key padding mask.
 *
 * qkv (B, T, 3H): per token the query (H), key (H) and value (H), each split
 * into `heads` heads of D = H / heads columns. lengths (B): tokens 0..len-1 of
 * sequence b are real, the rest padding. ctx (B, T, H) = per head
 * softmax(Q K^T / sqrt(D) over real keys) V. Query rows past the length are
 * computed the same way (they see only real keys) and are ignored by pooling.
 * q/k/v in f32 or f16 (ctx the same dtype); dots in float over D (at most a
 * few hundred terms), softmax in double, P V in double.
 */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <math.h>
#include <stdlib.h>

/* Copies head columns [c0, c0 + d) of the (T, 3H) rows into dst (T, d) f32. */
static void gather_head(const void *qkv, int f16, size_t base, int t, int h3, int c0, int d, float *dst)
{
    for (int s = 0; s < t; s++)
        for (int j = 0; j < d; j++) {
            size_t i = base + (size_t)s * h3 + c0 + j;
            dst[(size_t)s * d + j] = f16 ? ims_f16_to_f32(((const uint16_t *)qkv)[i]) : ((const float *)qkv)[i];
        }
}

void cpu_attention(const void *qkv, const int32_t *lengths, void *ctx, int f16, int b, int t, int h, int heads)
{
    int d = h / heads, h3 = 3 * h;
    double scale = 1.0 / sqrt((double)d);
    #pragma omp parallel if ((int64_t)b * heads * t * t * (h / heads) > CPU_PARALLEL_MIN)
    {
        float *q = malloc((size_t)t * d * sizeof *q), *k = malloc((size_t)t * d * sizeof *k);
        float *v = malloc((size_t)t * d * sizeof *v);
        double *p = malloc((size_t)t * sizeof *p), *acc = malloc((size_t)d * sizeof *acc);
        int ok = q && k && v && p && acc;
        #pragma omp for schedule(dynamic)
        for (int bh = 0; bh < b * heads; bh++) {
            if (!ok)
                continue;
            int bi = bh / heads, hi = bh % heads;
            int len = lengths[bi] < 0 ? 0 : lengths[bi] > t ? t : lengths[bi];
            size_t base = (size_t)bi * t * h3;
            gather_head(qkv, f16, base, t, h3, hi * d, d, q);
            gather_head(qkv, f16, base, t, h3, h + hi * d, d, k);
            gather_head(qkv, f16, base, t, h3, 2 * h + hi * d, d, v);
            for (int qi = 0; qi < t; qi++) {
                const float *qr = q + (size_t)qi * d; /* (D) */
                double mx = -INFINITY;
                for (int s = 0; s < len; s++) {
                    const float *kr = k + (size_t)s * d;
                    float dot = 0.0f;
                    for (int j = 0; j < d; j++)
                        dot += qr[j] * kr[j];
                    p[s] = dot * scale;
                    if (p[s] > mx)
                        mx = p[s];
                }
                double sum = 0.0;
                for (int s = 0; s < len; s++) {
                    p[s] = exp(p[s] - mx);
                    sum += p[s];
                }
                for (int j = 0; j < d; j++)
                    acc[j] = 0.0;
                for (int s = 0; s < len; s++) {
                    const float *vr = v + (size_t)s * d;
                    double w = p[s] / sum;
                    for (int j = 0; j < d; j++)
                        acc[j] += w * vr[j];
                }
                size_t out = ((size_t)bi * t + qi) * h + (size_t)hi * d;
                for (int j = 0; j < d; j++) {
                    if (f16)
                        ((uint16_t *)ctx)[out + j] = ims_f32_to_f16((float)acc[j]);
                    else
                        ((float *)ctx)[out + j] = (float)acc[j];
                }
            }
        }
        free(q), free(k), free(v), free(p), free(acc);
    }
}
