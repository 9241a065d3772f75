/* knn_rescore.cu: the knn_rescore op's kernel (engine/backend/backend.h): the
 * exact pass of the f16 prefilter.
 *
 * One block per query. Its warps take the candidates in turn: the lanes read
 * the stored row (coalesced, lane-strided columns) and sum q[i] * row[i] in
 * fp64 (each product of an f32 and an f16 or f32 is exact in fp64), reduced
 * with shuffles and rounded once to f32: the score of the CPU twin
 * (kernels/cpu/knn_rescore.c) up to the fp64 summation order. The
 * candidates' keys (knn_keys.cuh) are sorted in shared memory by a bitonic
 * sort (C <= KNN_RESCORE_MAX, padded to a power of two with 0 keys, below
 * every real key) and the first min(k, C) written. Thread 0 evaluates the
 * bound (imsi_knn_prefilter_holds, kernels/cuda/knn_tile.c) into ok.
 */
#include "knn_keys.cuh"
#include "knn_tile.h"
#include "launch.h"

#include <cuda_fp16.h>

#define KNN_RESCORE_THREADS 256
#define KNN_WARP 32

template <typename T> static __device__ __forceinline__ double knn_elem(const T *row, int i);
template <> __device__ __forceinline__ double knn_elem<float>(const float *row, int i) { return (double)__ldg(row + i); }
template <> __device__ __forceinline__ double knn_elem<__half>(const __half *row, int i)
{
    return (double)__half2float(row[i]);
}

template <typename T>
static __global__ void __launch_bounds__(KNN_RESCORE_THREADS)
    knn_rescore_kernel(const T *__restrict__ table,            // (n, d)
                       const float *__restrict__ queries,      // (b, d)
                       const int32_t *__restrict__ cand,       // (b, c)
                       const float *__restrict__ cand_scores,  // (b, c)
                       const float *__restrict__ margin,       // (b)
                       int32_t *__restrict__ ids,              // (b, kk)
                       float *__restrict__ scores,             // (b, kk)
                       int32_t *__restrict__ ok,               // (b)
                       int n, int d, int c, int kk, int padded)
{
    __shared__ uint64_t keys[KNN_RESCORE_MAX];
    __shared__ int bad;
    const int q = blockIdx.x, lane = threadIdx.x % KNN_WARP, warp = threadIdx.x / KNN_WARP;
    const int warps = KNN_RESCORE_THREADS / KNN_WARP;
    const float *qv = queries + (size_t)q * d;
    const int32_t *cq = cand + (size_t)q * c;
    if (threadIdx.x == 0)
        bad = 0;
    for (int j = c + threadIdx.x; j < padded; j += blockDim.x)
        keys[j] = 0;
    __syncthreads();
    for (int j = warp; j < c; j += warps) {
        int32_t id = cq[j];
        if (id < 0 || id >= n) { /* never from knn_select: dropped, and the query is searched exactly */
            if (lane == 0) {
                keys[j] = 0;
                bad = 1;
            }
            continue;
        }
        const T *row = table + (size_t)id * d;
        double sum = 0.0;
        for (int i = lane; i < d; i += KNN_WARP)
            sum = fma((double)__ldg(qv + i), knn_elem<T>(row, i), sum);
        for (int off = KNN_WARP / 2; off > 0; off /= 2)
            sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (lane == 0)
            keys[j] = knn_ckey(__double2float_rn(sum), id);
    }
    __syncthreads();
    knn_bitonic_desc(keys, padded);
    for (int i = threadIdx.x; i < kk; i += blockDim.x) {
        uint64_t key = keys[i];
        ids[(size_t)q * kk + i] = key ? knn_ckey_row(key) : -1;
        scores[(size_t)q * kk + i] = key ? knn_ckey_score(key) : -INFINITY;
    }
    if (threadIdx.x == 0) {
        const float *a = cand_scores + (size_t)q * c;
        float m = margin[q];
        int holds = c >= n || (isfinite(a[kk - 1]) && isfinite(m) && m >= 0.0f &&
                               (double)a[c - 1] < (double)a[kk - 1] - 2.0 * (double)m);
        ok[q] = holds && !bad;
    }
}

extern "C" cudaError_t imsi_cuda_knn_rescore(const void *table, int table_f16, const float *queries,
                                             const int32_t *cand, const float *cand_scores, const float *margin,
                                             int32_t *ids, float *scores, int32_t *ok, int n, int d, int b, int c,
                                             int k, cudaStream_t s)
{
    if (b <= 0)
        return cudaSuccess;
    if (c < 1 || c > KNN_RESCORE_MAX || c > n || k < 1 || d < 1)
        return cudaErrorInvalidValue;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    int kk = k < c ? k : c, padded = 1;
    while (padded < c)
        padded *= 2;
    if (table_f16)
        knn_rescore_kernel<__half><<<(unsigned int)b, KNN_RESCORE_THREADS, 0, s>>>(
            static_cast<const __half *>(table), queries, cand, cand_scores, margin, ids, scores, ok, n, d, c, kk, padded);
    else
        knn_rescore_kernel<float><<<(unsigned int)b, KNN_RESCORE_THREADS, 0, s>>>(
            static_cast<const float *>(table), queries, cand, cand_scores, margin, ids, scores, ok, n, d, c, kk, padded);
    return cudaGetLastError();
}
