/* knn_select.cu: exact per-query top-k selection over a score tile (radix select).
 *
 * Input per query q: the running best of earlier tiles, tile[q][0 .. kprev)
 * with ids cand[q][0 .. kprev), and the new scores tile[q][kcap .. kcap + cnt)
 * of rows base .. base + cnt - 1. Output: the kk = min(k, kprev + cnt) best of
 * both, sorted, into tile[q][0 .. kk) and cand[q][0 .. kk), ready for the next
 * tile.
 *
 * Order: every element becomes one unique 64-bit key, (score key << 32) |
 * ~row: the score key is the float's bits made order-preserving (NaN as -inf,
 * -0 as +0) and ~row makes a lower row the larger key among equal scores. So
 * "best k" is simply "the k largest keys", whatever order elements come in,
 * and the result is exact and deterministic.
 *
 * Selection of the kk largest keys (one block): radix select, 8 bits per pass
 * from the top, over a 256-bin shared histogram; it stops early once the bin
 * holding the kk-th key is taken whole (usually after 2 or 3 passes on real
 * scores). Then every key whose masked value is >= the found prefix is
 * gathered: exactly kk of them, since keys are unique. A rank sort (the count
 * of larger keys) writes them in order.
 *
 * Two stages when k is small against the tile (k <= KNN_SEGMENT / 4):
 * 1. knn_segment_kernel, grid (segments, queries): each block loads one
 *    segment of KNN_SEGMENT scores into shared memory and selects its
 *    min(k, len) best into a per-block candidate list (global memory).
 * 2. knn_final_kernel, one block per query: selects over the old candidates
 *    and the per-block lists and sorts. For a B = 1 search this spreads the
 *    work over (T / 4096) blocks instead of one.
 * Large k (1024 < k <= 16384, nothing bounded by on-chip memory):
 * 1. knn_partition_kernel, grid (partitions, queries), when the tile holds at
 *    least two partitions of 8 k scores: each block radix-selects its
 *    partition's best k straight from the tile into a list (global memory).
 * 2. knn_final_kernel over the old candidates and the lists (an eighth of the
 *    scores), or over the tile where it is smaller.
 * The final order: a rank sort (the count of larger keys, O(kk^2 / threads))
 * up to 1024 keys; above, a bitonic sort of the keys in the query's tmp row
 * (padded with 0 keys to imsi_knn_tmp_stride, a power of two), O(kk log^2 kk).
 */
#include "knn_keys.cuh"
#include "knn_tile.h"
#include "launch.h"

#define KNN_SELECT_THREADS 512
#define KNN_SEGMENT IMS_KNN_SEGMENT /* knn_tile.h: one rule for the kernels and the workspace */
#define KNN_RADIX_BINS 256
#define KNN_MAX_GRID_Y 65535

typedef struct knn_radix {
    unsigned int hist[KNN_RADIX_BINS];
    uint64_t prefix, mask;
    int need, done, count;
} knn_radix;

/* Finds (prefix, mask) such that exactly kk of the m keys get(j) have
 * (key & mask) >= prefix: those are the kk largest. 1 <= kk <= m. Every
 * thread of the block calls it; the result is in st->prefix, st->mask. */
template <typename Get>
static __device__ void knn_block_select(Get get, int m, int kk, knn_radix *st)
{
    if (threadIdx.x == 0) {
        st->prefix = 0;
        st->mask = 0;
        st->need = kk;
        st->done = 0;
    }
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < KNN_RADIX_BINS; i += blockDim.x)
            st->hist[i] = 0;
        __syncthreads();
        if (st->done) /* uniform: written by thread 0 before the last barrier */
            break;
        uint64_t prefix = st->prefix, mask = st->mask;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            uint64_t c = get(j);
            if ((c & mask) == prefix)
                atomicAdd(&st->hist[(c >> shift) & 0xffu], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int need = st->need, above = 0;
            for (int bin = KNN_RADIX_BINS - 1; bin >= 0; bin--) {
                int h = (int)st->hist[bin];
                if (above + h >= need) {
                    st->prefix = prefix | ((uint64_t)bin << shift);
                    st->mask = mask | ((uint64_t)0xffu << shift);
                    st->need = need - above;
                    st->done = h == need - above; /* the whole bin is taken */
                    break;
                }
                above += h;
            }
        }
        __syncthreads();
    }
}

/* Writes the kk selected keys into out[0 .. kk) in any order. */
template <typename Get>
static __device__ void knn_block_gather(Get get, int m, knn_radix *st, uint64_t *out)
{
    if (threadIdx.x == 0)
        st->count = 0;
    __syncthreads();
    const uint64_t prefix = st->prefix, mask = st->mask;
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        uint64_t c = get(j);
        if ((c & mask) >= prefix)
            out[atomicAdd(&st->count, 1)] = c;
    }
    __syncthreads();
}

/* Stage 1: one block per (segment, query): the segment's best min(k, len). */
static __global__ void __launch_bounds__(KNN_SELECT_THREADS)
    knn_segment_kernel(const float *__restrict__ tile, // (b, ld); new scores at column kcap
                       uint64_t *__restrict__ seg,     // (b, segments, kseg)
                       int ld, int kcap, int cnt, int32_t base, int k, int segments, int kseg)
{
    __shared__ uint64_t keys[KNN_SEGMENT];
    __shared__ knn_radix st;
    const int q = blockIdx.y, s = blockIdx.x;
    const int start = s * KNN_SEGMENT;
    const int len = cnt - start < KNN_SEGMENT ? cnt - start : KNN_SEGMENT;
    const float *scores = tile + (size_t)q * ld + kcap + start; // (len)
    for (int i = threadIdx.x; i < len; i += blockDim.x)
        keys[i] = knn_ckey(scores[i], base + start + i);
    __syncthreads();
    const int kk = k < len ? k : len;
    auto get = [&](int j) { return keys[j]; };
    knn_block_select(get, len, kk, &st);
    uint64_t *out = seg + ((size_t)q * segments + s) * kseg;
    knn_block_gather(get, len, &st, out);
    for (int i = kk + threadIdx.x; i < kseg; i += blockDim.x)
        out[i] = 0; /* below every real key: never selected */
}

/* Large-k stage 1: one block per (partition, query): the partition's best
 * min(k, len) keys, read from the tile, into its list (padded with 0 keys). */
static __global__ void __launch_bounds__(KNN_SELECT_THREADS)
    knn_partition_kernel(const float *__restrict__ tile, // (b, ld); new scores at column kcap
                         uint64_t *__restrict__ lists,   // (b, parts, k)
                         int ld, int kcap, int cnt, int32_t base, int k, int parts, int plen)
{
    __shared__ knn_radix st;
    const int q = blockIdx.y, p = blockIdx.x;
    const int start = p * plen;
    const int len = cnt - start < plen ? cnt - start : plen;
    const float *scores = tile + (size_t)q * ld + kcap + start; // (len)
    const int kk = k < len ? k : len;
    auto get = [&](int j) { return knn_ckey(scores[j], base + start + j); };
    knn_block_select(get, len, kk, &st);
    uint64_t *out = lists + ((size_t)q * parts + p) * k;
    knn_block_gather(get, len, &st, out);
    for (int i = kk + threadIdx.x; i < k; i += blockDim.x)
        out[i] = 0;
}

/* Stage 2 (or the only stage): one block per query. seg: the stage-1 lists,
 * or NULL to read the new scores from the tile. */
static __global__ void __launch_bounds__(KNN_SELECT_THREADS)
    knn_final_kernel(float *__restrict__ tile,        // (b, ld)
                     int32_t *__restrict__ cand,      // (b, kcap)
                     uint64_t *__restrict__ tmp,      // (b, kcap)
                     const uint64_t *__restrict__ seg, // (b, segments, kseg) or NULL
                     int ld, int kprev, int kcap, int tstride, int cnt, int32_t base, int k, int segments, int kseg)
{
    __shared__ knn_radix st;
    const int q = blockIdx.x;
    float *row = tile + (size_t)q * ld;
    int32_t *cq = cand + (size_t)q * kcap;
    uint64_t *tq = tmp + (size_t)q * tstride;
    const uint64_t *sq = seg ? seg + (size_t)q * segments * kseg : NULL;
    const int m = kprev + (seg ? segments * kseg : cnt);
    const int kk = k < kprev + cnt ? k : kprev + cnt;
    auto get = [&](int j) -> uint64_t {
        if (j < kprev)
            return knn_ckey(row[j], cq[j]);
        j -= kprev;
        return sq ? sq[j] : knn_ckey(row[kcap + j], base + j);
    };
    knn_block_select(get, m, kk, &st);
    knn_block_gather(get, m, &st, tq); /* ends with a barrier: all reads of row/cq done */
    if (kk > 1024) {
        int n = 1024;
        while (n < kk)
            n *= 2; /* <= tstride */
        for (int i = kk + threadIdx.x; i < n; i += blockDim.x)
            tq[i] = 0;
        __syncthreads();
        knn_bitonic_desc(tq, n);
        for (int i = threadIdx.x; i < kk; i += blockDim.x) {
            row[i] = knn_ckey_score(tq[i]);
            cq[i] = knn_ckey_row(tq[i]);
        }
        return;
    }
    for (int i = threadIdx.x; i < kk; i += blockDim.x) {
        uint64_t c = tq[i];
        int rank = 0;
        for (int j = 0; j < kk; j++)
            rank += tq[j] > c;
        row[rank] = knn_ckey_score(c);
        cq[rank] = knn_ckey_row(c);
    }
}

extern "C" cudaError_t imsi_cuda_knn_select(float *tile,    // (b, ld)
                                            int32_t *cand,  // (b, kcap)
                                            uint64_t *tmp,  // (b, imsi_knn_tmp_stride(kcap))
                                            uint64_t *seg,  // imsi_knn_segment_bytes(b, k, cnt) bytes, or NULL
                                            int b, int ld, int kprev, int kcap, int cnt, int32_t base, int k,
                                            cudaStream_t s)
{
    if (b <= 0 || kprev + cnt <= 0)
        return cudaSuccess;
    if (k < 1 || k > kcap || kprev > kcap || ld < kcap + cnt || cnt < 0)
        return cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    int staged = seg != NULL && imsi_knn_two_stage(k, cnt);
    int parted = seg != NULL && !staged && imsi_knn_partitioned(k, cnt);
    int segments = staged ? (cnt + KNN_SEGMENT - 1) / KNN_SEGMENT : 0, kseg = staged ? k : 0;
    if (parted) {
        int plen = (int)imsi_knn_partition_len(k), parts = (int)imsi_knn_partitions(k, cnt);
        for (int q0 = 0; q0 < b; q0 += KNN_MAX_GRID_Y) {
            int qn = b - q0 < KNN_MAX_GRID_Y ? b - q0 : KNN_MAX_GRID_Y;
            dim3 grid((unsigned int)parts, (unsigned int)qn);
            knn_partition_kernel<<<grid, KNN_SELECT_THREADS, 0, s>>>(tile + (size_t)q0 * ld,
                                                                    seg + (size_t)q0 * parts * k, ld, kcap, cnt,
                                                                    base, k, parts, plen);
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess)
                return e;
        }
        segments = parts;
        kseg = k;
    }
    if (staged) {
        for (int q0 = 0; q0 < b; q0 += KNN_MAX_GRID_Y) {
            int qn = b - q0 < KNN_MAX_GRID_Y ? b - q0 : KNN_MAX_GRID_Y;
            dim3 grid((unsigned int)segments, (unsigned int)qn);
            knn_segment_kernel<<<grid, KNN_SELECT_THREADS, 0, s>>>(tile + (size_t)q0 * ld,
                                                                  seg + (size_t)q0 * segments * kseg, ld, kcap, cnt,
                                                                  base, k, segments, kseg);
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess)
                return e;
        }
    }
    int tstride = (int)imsi_knn_tmp_stride(kcap);
    knn_final_kernel<<<(unsigned int)b, KNN_SELECT_THREADS, 0, s>>>(tile, cand, tmp, staged || parted ? seg : NULL, ld,
                                                                    kprev, kcap, tstride, cnt, base, k, segments, kseg);
    return cudaGetLastError();
}
