/* knn_select.cu: exact per-query top-k selection over a score tile (radix select).
 *
 * Input per query q (one block per query): the running best of earlier tiles,
 * tile[q][0 .. kprev) with ids cand[q][0 .. kprev) (sorted best first, equal
 * scores by lower id), and the new scores tile[q][kcap .. kcap + cnt) of rows
 * base .. base + cnt - 1. Output: the kk = min(k, kprev + cnt) best of both,
 * sorted, into tile[q][0 .. kk) and cand[q][0 .. kk), ready for the next tile.
 *
 * Order: an element's logical position is j < kprev for the old candidates and
 * kprev + i for new row i. Because earlier tiles hold lower rows and the old
 * list has equal scores by increasing id, logical position order among equal
 * scores is id order.
 *
 * Steps (all exact, all deterministic):
 * 1. Scores become 32-bit keys ordered like the floats (NaN as -inf, -0 as +0).
 * 2. Radix select, 4 passes of 8 bits from the top, over a 256-bin shared
 *    histogram, finds the kk-th largest key T and how many elements equal to T
 *    belong to the answer (need_eq; the others with key T are dropped).
 * 3. Gather: keys > T go to a scratch list in any order (atomic slots); keys
 *    == T are taken in logical position order, the first need_eq of them, by a
 *    block-wide scan per stride: the lowest ids win the tie.
 * 4. Rank sort: each candidate's output slot is the number of candidates better
 *    than it (key desc, id asc; keys with ids are unique), O(kk^2 / threads):
 *    cheap for the usual k <= 1024, slow but correct up to k = 16384.
 *
 * This is also the large-k path: nothing here is bounded by on-chip memory
 * (the scratch lists are global, (b, kcap)).
 */
#include "launch.h"

#include <cub/block/block_scan.cuh>

#define KNN_SELECT_THREADS 512
#define KNN_RADIX_BINS 256

static __device__ __forceinline__ uint32_t knn_key(float f)
{
    if (isnan(f))
        f = -INFINITY;
    if (f == 0.0f)
        f = 0.0f; /* -0 and +0 are equal scores */
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static __device__ __forceinline__ float knn_key_score(uint32_t k)
{
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/* The logical element j: the old candidates, then the new scores. */
static __device__ __forceinline__ void knn_element(const float *row, const int32_t *cand, int kprev, int kcap,
                                                   int32_t base, int j, uint32_t *key, int32_t *id)
{
    if (j < kprev) {
        *key = knn_key(row[j]);
        *id = cand[j];
    } else {
        *key = knn_key(row[kcap + (j - kprev)]);
        *id = base + (j - kprev);
    }
}

static __global__ void __launch_bounds__(KNN_SELECT_THREADS)
    knn_select_kernel(float *__restrict__ tile,       // (b, ld)
                      int32_t *__restrict__ cand,     // (b, kcap)
                      uint32_t *__restrict__ tmp_keys, // (b, kcap)
                      int32_t *__restrict__ tmp_ids,  // (b, kcap)
                      int ld, int kprev, int kcap, int cnt, int32_t base, int k)
{
    typedef cub::BlockScan<int, KNN_SELECT_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage scan_storage;
    __shared__ unsigned int hist[KNN_RADIX_BINS];
    __shared__ uint32_t s_prefix, s_mask;
    __shared__ int s_need, s_gt, s_eq_taken;

    const int q = blockIdx.x;
    float *row = tile + (size_t)q * ld;
    int32_t *cq = cand + (size_t)q * kcap;
    uint32_t *tk = tmp_keys + (size_t)q * kcap;
    int32_t *ti = tmp_ids + (size_t)q * kcap;
    const int m = kprev + cnt;
    const int kk = k < m ? k : m;
    if (threadIdx.x == 0) {
        s_prefix = 0;
        s_mask = 0;
        s_need = kk;
        s_gt = 0;
        s_eq_taken = 0;
    }
    /* 2. Radix select of the kk-th largest key. */
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < KNN_RADIX_BINS; i += blockDim.x)
            hist[i] = 0;
        __syncthreads();
        uint32_t prefix = s_prefix, mask = s_mask;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            uint32_t key;
            int32_t id;
            knn_element(row, cq, kprev, kcap, base, j, &key, &id);
            if ((key & mask) == prefix)
                atomicAdd(&hist[(key >> shift) & 0xffu], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int need = s_need, above = 0;
            for (int bin = KNN_RADIX_BINS - 1; bin >= 0; bin--) {
                int h = (int)hist[bin];
                if (above + h >= need) {
                    s_prefix = prefix | ((uint32_t)bin << shift);
                    s_mask = mask | (0xffu << shift);
                    s_need = need - above;
                    break;
                }
                above += h;
            }
        }
        __syncthreads();
    }
    const uint32_t thr = s_prefix;
    const int need_eq = s_need;
    const int n_gt = kk - need_eq;

    /* 3. Gather: all keys above thr; the first need_eq equal to it in order. */
    for (int j0 = 0; j0 < m; j0 += blockDim.x) {
        int j = j0 + threadIdx.x;
        uint32_t key = 0;
        int32_t id = 0;
        if (j < m)
            knn_element(row, cq, kprev, kcap, base, j, &key, &id);
        if (j < m && key > thr) {
            int slot = atomicAdd(&s_gt, 1);
            tk[slot] = key;
            ti[slot] = id;
        }
        int is_eq = j < m && key == thr, rank, total;
        scan_t(scan_storage).ExclusiveSum(is_eq, rank, total);
        int taken = s_eq_taken;
        if (is_eq && taken + rank < need_eq) {
            tk[n_gt + taken + rank] = key;
            ti[n_gt + taken + rank] = id;
        }
        __syncthreads(); /* everyone read s_eq_taken and scan_storage */
        if (threadIdx.x == 0)
            s_eq_taken = taken + total;
        __syncthreads();
    }

    /* 4. Rank sort into the head of the row and the candidate list. */
    for (int i = threadIdx.x; i < kk; i += blockDim.x) {
        uint32_t key = tk[i];
        int32_t id = ti[i];
        int rank = 0;
        for (int j = 0; j < kk; j++) {
            uint32_t kj = tk[j];
            rank += kj > key || (kj == key && ti[j] < id);
        }
        row[rank] = knn_key_score(key);
        cq[rank] = id;
    }
}

extern "C" cudaError_t cuda_knn_select(float *tile,       // (b, ld)
                                       int32_t *cand,     // (b, kcap)
                                       uint32_t *tmp_keys, // (b, kcap)
                                       int32_t *tmp_ids,  // (b, kcap)
                                       int b, int ld, int kprev, int kcap, int cnt, int32_t base, int k,
                                       cudaStream_t s)
{
    if (b <= 0 || kprev + cnt <= 0)
        return cudaSuccess;
    if (k > kcap || kprev > kcap || ld < kcap + cnt)
        return cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    knn_select_kernel<<<(unsigned int)b, KNN_SELECT_THREADS, 0, s>>>(tile, cand, tmp_keys, tmp_ids, ld, kprev, kcap,
                                                                     cnt, base, k);
    return cudaGetLastError();
}
