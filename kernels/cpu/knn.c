/* knn.c: the knn_select op (engine/backend/backend.h) on the CPU: blocked
 * sgemm + per-query heaps.
 *
 * The table (n, d) is walked in blocks of R rows. Each block's scores
 * (b, R) = queries (b, d) . block (R, d)^T come from OpenBLAS (sgemv when b = 1;
 * an f16 block is first converted to an f32 scratch block), then every query
 * pushes its R scores into its own bounded min-heap of size k, whose root is
 * the worst kept entry. Rows arrive in increasing index order, so a score equal
 * to the root's belongs to a later row and is worse: the test is one compare
 * (s > root) and the heap keeps "equal scores by lower row index" for free.
 * NaN scores become -inf (they can only come from a table of huge values in the
 * inner-product metric). At the end each heap is popped into descending order.
 *
 * Threads: OpenBLAS threads the sgemm; the f16 conversion uses F16C (or
 * OpenMP threads without it).
 * The selection runs on the calling thread: it costs about one compare per
 * score (a few % of the sgemm's 2 D flops per score), and an OpenMP region
 * between two sgemm calls made the two thread pools (OpenBLAS's pthreads spin
 * after each call) fight over the cores: measured 2x slower on 2 cores for
 * B = 16 and B = 1024. The block size keeps the score tile near 4 MiB
 * (b * R floats) so it stays in cache between the sgemm and the selection.
 */
#include "ops_cpu.h"

#include <cblas.h>
#include <math.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define KNN_HAVE_F16C 1
#endif

#define KNN_TILE_FLOATS (1 << 20)
#define KNN_MIN_BLOCK 256
#define KNN_MAX_BLOCK 16384

typedef struct knn_heap {
    float *s;   /* (k) */
    int32_t *i; /* (k) */
    int n, k;
} knn_heap;

/* a worse than b: a lower score, or an equal score with a higher row index. */
static int worse(float as, int32_t ai, float bs, int32_t bi) { return as < bs || (as == bs && ai > bi); }

static void sift_down(knn_heap *h, int pos)
{
    float s = h->s[pos];
    int32_t id = h->i[pos];
    for (;;) {
        int c = 2 * pos + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && worse(h->s[c + 1], h->i[c + 1], h->s[c], h->i[c]))
            c++;
        if (!worse(h->s[c], h->i[c], s, id))
            break;
        h->s[pos] = h->s[c];
        h->i[pos] = h->i[c];
        pos = c;
    }
    h->s[pos] = s;
    h->i[pos] = id;
}

static void sift_up(knn_heap *h, int pos)
{
    float s = h->s[pos];
    int32_t id = h->i[pos];
    while (pos > 0) {
        int parent = (pos - 1) / 2;
        if (!worse(s, id, h->s[parent], h->i[parent]))
            break;
        h->s[pos] = h->s[parent];
        h->i[pos] = h->i[parent];
        pos = parent;
    }
    h->s[pos] = s;
    h->i[pos] = id;
}

/* Pushes the scores of rows base .. base + count - 1 (increasing index). */
static void heap_push_block(knn_heap *h, const float *scores /* (count) */, int32_t base, int count)
{
    int j = 0;
    for (; j < count && h->n < h->k; j++) {
        float s = scores[j];
        h->s[h->n] = isnan(s) ? -INFINITY : s;
        h->i[h->n] = base + j;
        sift_up(h, h->n++);
    }
    float root = h->n ? h->s[0] : INFINITY;
    for (; j < count; j++) {
        float s = scores[j];
        if (s > root) { /* NaN compares false: never enters a full heap */
            h->s[0] = s;
            h->i[0] = base + j;
            sift_down(h, 0);
            root = h->s[0];
        }
    }
}

/* Pops the heap into ids/scores (n entries), best first. */
static void heap_drain(knn_heap *h, int32_t *ids, float *scores)
{
    while (h->n > 0) {
        int last = --h->n;
        ids[last] = h->i[0];
        scores[last] = h->s[0];
        h->s[0] = h->s[last];
        h->i[0] = h->i[last];
        if (h->n)
            sift_down(h, 0);
    }
}

#ifdef KNN_HAVE_F16C
/* dst (n) = src (n) with the F16C instruction (exact, as the scalar code). */
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    imsi_cpu_convert_f16_to_f32(src + i, dst + i, n - i);
}
#endif

#ifdef KNN_HAVE_F16C
/* CPUID leaf 1: F16C and AVX, with the OS saving the AVX registers (XGETBV).
 * (Not __builtin_cpu_supports("f16c"): older clang lacks that name.) */
static int cpu_has_f16c(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const unsigned int osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (osxsave | avx | f16c)) != (osxsave | avx | f16c))
        return 0;
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u; /* XMM and YMM state */
}
#endif

/* An f16 block to f32: F16C where the CPU has it (a scalar conversion costs as
 * much as the sgemv of a B = 1 search), else the portable code. */
static void block_to_f32(const uint16_t *src, float *dst, size_t n)
{
#ifdef KNN_HAVE_F16C
    if (cpu_has_f16c()) {
        f16_to_f32_f16c(src, dst, n);
        return;
    }
#endif
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 4096)
        imsi_cpu_convert_f16_to_f32(src + i, dst + i, n - i < 4096 ? n - i : 4096);
}

static int block_rows(int b, int64_t n)
{
    int64_t r = KNN_TILE_FLOATS / (b > 0 ? b : 1);
    r = r < KNN_MIN_BLOCK ? KNN_MIN_BLOCK : r > KNN_MAX_BLOCK ? KNN_MAX_BLOCK : r;
    r = r / 64 * 64;
    return (int)(r < n ? r : n);
}

/* The scratch's parts, each at a multiple of 64 bytes. */
typedef struct knn_layout {
    size_t tile, block, heap_s, heap_i, heaps, total;
} knn_layout;

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

static knn_layout layout(int f16, int64_t n, int d, int b, int k)
{
    knn_layout l;
    int kk = k < n ? k : (int)n, rows = block_rows(b, n);
    l.tile = 0;                                                            /* (b, rows) f32 */
    l.block = l.tile + align64((size_t)b * rows * sizeof(float));         /* (rows, d) f32, f16 tables */
    l.heap_s = l.block + (f16 ? align64((size_t)rows * d * sizeof(float)) : 0); /* (b, kk) f32 */
    l.heap_i = l.heap_s + align64((size_t)b * kk * sizeof(float));         /* (b, kk) i32 */
    l.heaps = l.heap_i + align64((size_t)b * kk * sizeof(int32_t));        /* (b) */
    l.total = l.heaps + align64((size_t)b * sizeof(knn_heap));
    return l;
}

size_t imsi_cpu_knn_scratch_bytes(int f16, int64_t n, int d, int b, int k)
{
    return n <= 0 || b <= 0 ? 0 : layout(f16, n, d, b, k).total;
}

void imsi_cpu_knn_select(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                         int b, int k, int32_t *ids, float *scores, void *scratch)
{
    if (n <= 0 || b <= 0)
        return;
    int kk = k < n ? k : (int)n;
    int rows = block_rows(b, n);
    knn_layout l = layout(table_f16 != NULL, n, d, b, k);
    char *ws = scratch;
    float *tile = (float *)(ws + l.tile);                         /* (b, rows) */
    float *block = table_f16 ? (float *)(ws + l.block) : NULL;    /* (rows, d) */
    float *heap_s = (float *)(ws + l.heap_s);                     /* (b, kk) */
    int32_t *heap_i = (int32_t *)(ws + l.heap_i);                 /* (b, kk) */
    knn_heap *heaps = (knn_heap *)(ws + l.heaps);                 /* (b) */
    for (int q = 0; q < b; q++)
        heaps[q] = (knn_heap){heap_s + (size_t)q * kk, heap_i + (size_t)q * kk, 0, kk};

    for (int64_t r0 = 0; r0 < n; r0 += rows) {
        int count = (int)(n - r0 < rows ? n - r0 : rows);
        const float *src = table_f32 ? table_f32 + (size_t)r0 * d : block;
        if (table_f16)
            block_to_f32(table_f16 + (size_t)r0 * d, block, (size_t)count * d);
        if (b == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, count, d, 1.0f, src, d, queries, 1, 0.0f, tile, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, count, d, 1.0f, queries, d, src, d, 0.0f, tile,
                        count);
        for (int q = 0; q < b; q++)
            heap_push_block(&heaps[q], tile + (size_t)q * count, (int32_t)r0, count);
    }
    for (int q = 0; q < b; q++)
        heap_drain(&heaps[q], ids + (size_t)q * kk, scores + (size_t)q * kk);
}
