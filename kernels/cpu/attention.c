/* attention.c: the attention op (engine/backend/backend.h) on the CPU: masked
 * multi-head self-attention, one (sequence, head) pair per loop iteration.
 *
 * Precision as the GPU path (cuBLAS, fp32 accumulation): dots and P . V in
 * float, the softmax's max and normalizing sum in double. Loops are laid out
 * so the compiler vectorizes them without reassociating a sum: scores for one
 * query run over keys (K is gathered transposed, (D, T)), and P . V runs over
 * the D columns of each value row.
 */
#include "ops_cpu.h"

#include "fast_math.h"
#include "imgsearch.h"

#include <math.h>
#include <string.h>

static float load(const void *p, size_t i, int f16)
{
    return f16 ? ims_f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Head columns [c0, c0 + d) of the (T, 3H) rows of one sequence: into dst
 * (T, d), or transposed into dst (d, T). */
static void gather_head(const void *qkv, int f16, size_t base, int t, int h3, int c0, int d, int transpose,
                        float *dst)
{
    for (int s = 0; s < t; s++)
        for (int j = 0; j < d; j++) {
            float v = load(qkv, base + (size_t)s * h3 + c0 + j, f16);
            if (transpose)
                dst[(size_t)j * t + s] = v;
            else
                dst[(size_t)s * d + j] = v;
        }
}

/* One query row: out (d) = softmax(q . K^T * scale over keys < len) . V. */
static void attend_row(const float *q, const float *kt, const float *v, float *sc, float *acc, int t, int len, int d,
                       float scale)
{
    for (int s = 0; s < len; s++)
        sc[s] = 0.0f;
    for (int j = 0; j < d; j++) {
        const float *kr = kt + (size_t)j * t; /* (T): key column j */
        float qj = q[j];
        for (int s = 0; s < len; s++)
            sc[s] += qj * kr[s];
    }
    float mx = -INFINITY;
    for (int s = 0; s < len; s++) {
        sc[s] *= scale;
        mx = sc[s] > mx ? sc[s] : mx;
    }
    double sum = 0.0;
    for (int s = 0; s < len; s++) {
        sc[s] = expf(sc[s] - mx);
        sum += sc[s];
    }
    for (int j = 0; j < d; j++)
        acc[j] = 0.0f;
    for (int s = 0; s < len; s++) {
        const float *vr = v + (size_t)s * d;
        float p = sc[s];
        for (int j = 0; j < d; j++)
            acc[j] += p * vr[j];
    }
    float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f; /* len 0: no keys, ctx 0 (as the GPU) */
    for (int j = 0; j < d; j++)
        acc[j] *= inv;
}

/* One thread's scratch, in floats: q, kt, v (t * d each), sc (t), acc (d). */
static size_t thread_floats(int t, int d) { return 3 * (size_t)t * d + (size_t)t + (size_t)d; }

size_t imsi_cpu_attention_scratch_bytes(int t, int h, int heads, int threads)
{
    return cpu_slices_bytes(thread_floats(t, h / heads) * sizeof(float), threads);
}

void imsi_cpu_attention(const void *qkv, const int32_t *lengths, void *ctx, int f16, int b, int t, int h, int heads,
                        void *scratch, int threads)
{
    int d = h / heads, h3 = 3 * h;
    float scale = (float)(1.0 / sqrt((double)d));
    size_t slice = cpu_slices_bytes(thread_floats(t, d) * sizeof(float), 1);
    #pragma omp parallel num_threads(threads) if ((int64_t)b * heads * t * t * (h / heads) > CPU_PARALLEL_MIN)
    {
        float *q = (float *)((char *)scratch + slice * (size_t)cpu_thread_index()); /* (t, d) */
        float *kt = q + (size_t)t * d;                                             /* (d, t) */
        float *v = kt + (size_t)t * d;                                             /* (t, d) */
        float *sc = v + (size_t)t * d;                                             /* (t) */
        float *acc = sc + t;                                                       /* (d) */
        #pragma omp for schedule(dynamic)
        for (int bh = 0; bh < b * heads; bh++) {
            int bi = bh / heads, hi = bh % heads;
            int len = lengths[bi] < 0 ? 0 : lengths[bi] > t ? t : lengths[bi];
            size_t base = (size_t)bi * t * h3;
            gather_head(qkv, f16, base, t, h3, hi * d, d, 0, q);
            gather_head(qkv, f16, base, t, h3, h + hi * d, d, 1, kt);
            gather_head(qkv, f16, base, t, h3, 2 * h + hi * d, d, 0, v);
            for (int qi = 0; qi < t; qi++) {
                attend_row(q + (size_t)qi * d, kt, v, sc, acc, t, len, d, scale);
                size_t out = ((size_t)bi * t + qi) * h + (size_t)hi * d;
                for (int j = 0; j < d; j++) {
                    if (f16)
                        ((uint16_t *)ctx)[out + j] = ims_f32_to_f16(acc[j]);
                    else
                        ((float *)ctx)[out + j] = acc[j];
                }
            }
        }
    }
}

/* ---- The fast path (f32, the CPU encoder's) -------------------------------------- */

/* Keys are padded to a multiple of this (zero keys whose scores are then set
 * to -inf), so the vectorized loops over keys have no scalar remainder: a
 * sentence has 10-30 tokens, where the remainder would be most of the work. */
#define ATT_KEY_PAD 16

static int padded_keys(int len) { return (len + ATT_KEY_PAD - 1) / ATT_KEY_PAD * ATT_KEY_PAD; }

/* One query row, as attend_row but with the softmax in float (cpu_expf, a
 * float sum) and every loop vectorized: sums are grouped differently, so
 * results differ from the strict path in the last bits (test_backend_ops
 * bounds both against double), but not between machines or builds: no
 * reduction depends on the vector width and the file is compiled without
 * FMA contraction (CMakeLists.txt), so every clone does the same float
 * operations. kt is (d, lp), keys [len, lp) zero. */
static inline __attribute__((always_inline)) void attend_row_fast(const float *q, const float *kt, const float *v,
                                                                  float *sc, float *acc, int lp, int len, int d,
                                                                  float scale)
{
    #pragma omp simd
    for (int s = 0; s < lp; s++)
        sc[s] = 0.0f;
    for (int j = 0; j < d; j++) {
        const float *kr = kt + (size_t)j * lp;
        float qj = q[j] * scale;
        #pragma omp simd
        for (int s = 0; s < lp; s++)
            sc[s] += qj * kr[s];
    }
    for (int s = len; s < lp; s++)
        sc[s] = -INFINITY;
    float mx = -INFINITY; /* no simd pragma: clang cannot vectorize this select (a warning) */
    for (int s = 0; s < lp; s++)
        mx = sc[s] > mx ? sc[s] : mx;
    /* The sum in ATT_KEY_PAD fixed lanes, added up in a fixed order: the same
     * float additions whatever the vector width of the clone that runs (an
     * omp simd reduction would group them by the width: other last bits on
     * an AVX2 machine, or in another build). */
    float part[ATT_KEY_PAD] = {0};
    for (int s = 0; s < lp; s += ATT_KEY_PAD) {
        #pragma omp simd
        for (int l = 0; l < ATT_KEY_PAD; l++) {
            float e = cpu_expf(sc[s + l] - mx); /* -inf - mx: 0 */
            sc[s + l] = e;
            part[l] += e;
        }
    }
    float sum = 0.0f;
    for (int l = 0; l < ATT_KEY_PAD; l++)
        sum += part[l];
    #pragma omp simd
    for (int j = 0; j < d; j++)
        acc[j] = 0.0f;
    for (int s = 0; s < len; s++) {
        const float *vr = v + (size_t)s * d;
        float p = sc[s];
        #pragma omp simd
        for (int j = 0; j < d; j++)
            acc[j] += p * vr[j];
    }
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f; /* len 0: no keys, ctx 0 */
    #pragma omp simd
    for (int j = 0; j < d; j++)
        acc[j] *= inv;
}

/* One (sequence, head): kt (d, lp) and v (len, d) gathered from the (T, 3H)
 * rows (real tokens only), then every query row of the T, padding queries
 * included (over the real keys, as the strict path). */
CPU_SIMD_CLONES static void attend_head_fast(const float *qkv, float *ctx, int t, int h, int d, int len, int hi,
                                             float scale, float *q, float *kt, float *v, float *sc, float *acc)
{
    int h3 = 3 * h, c0 = hi * d, lp = padded_keys(len);
    for (int s = 0; s < len; s++) {
        const float *row = qkv + (size_t)s * h3;
        memcpy(v + (size_t)s * d, row + 2 * h + c0, (size_t)d * sizeof *v);
        for (int j = 0; j < d; j++)
            kt[(size_t)j * lp + s] = row[h + c0 + j];
    }
    for (int j = 0; j < d; j++)
        for (int s = len; s < lp; s++)
            kt[(size_t)j * lp + s] = 0.0f;
    for (int qi = 0; qi < t; qi++) {
        memcpy(q, qkv + (size_t)qi * h3 + c0, (size_t)d * sizeof *q);
        attend_row_fast(q, kt, v, sc, acc, lp, len, d, scale);
        memcpy(ctx + (size_t)qi * h + c0, acc, (size_t)d * sizeof *acc);
    }
}

/* Scratch in floats: q (d), kt (d, lp), v (t, d), sc (lp), acc (d). */
static size_t fast_floats(int t, int d)
{
    size_t lp = (size_t)padded_keys(t);
    return (size_t)d + (size_t)d * lp + (size_t)t * d + lp + (size_t)d;
}

size_t imsi_cpu_attention_fast_scratch_bytes(int t, int h, int heads)
{
    return fast_floats(t, h / heads) * sizeof(float);
}

void imsi_cpu_attention_fast(const float *qkv, const int32_t *lengths, float *ctx, int b, int t, int h, int heads,
                             void *scratch)
{
    int d = h / heads;
    size_t lpt = (size_t)padded_keys(t);
    float scale = (float)(1.0 / sqrt((double)d));
    float *q = scratch;                /* (d) */
    float *kt = q + d;                 /* (d, lp) */
    float *v = kt + (size_t)d * lpt;   /* (len, d) */
    float *sc = v + (size_t)t * d;     /* (lp) */
    float *acc = sc + lpt;             /* (d) */
    for (int bi = 0; bi < b; bi++) {
        int len = lengths[bi] < 0 ? 0 : lengths[bi] > t ? t : lengths[bi];
        for (int hi = 0; hi < heads; hi++)
            attend_head_fast(qkv + (size_t)bi * t * 3 * h, ctx + (size_t)bi * t * h, t, h, d, len, hi, scale, q, kt,
                             v, sc, acc);
    }
}
