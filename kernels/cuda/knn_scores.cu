/* knn_scores.cu: the streaming score kernel of the small-batch k-NN path.
 *
 * scores[q][j] = queries[q] . rows[j] for a slice of table rows, f16 or f32,
 * fp32 accumulation, written into a score tile with row stride ld (the
 * selection kernel, knn_select.cu, reads it next). One warp per table row
 * (grid-stride over rows): the warp's lanes read the row once with 16-byte
 * loads (8 halves or 4 floats; scalar loads when D or the row address does
 * not allow them) and each lane accumulates up to KNN_QGROUP queries' partial
 * sums in registers, reduced across the warp with shuffles at the end. So the
 * table is read once per group of KNN_QGROUP queries: for B <= 16 this is one
 * streaming pass at (ideally) memory bandwidth. Each block first copies the
 * queries (B * D floats) into shared memory when they fit in 48 KiB, so the
 * inner loop's query reads do not compete with the table stream in L1.
 *
 * The result is not bit-identical to a CPU sgemm (another summation order);
 * the GPU test compares within fp32 rounding of a length-D dot product.
 */
#include "launch.h"

#include <cuda_fp16.h>

#define KNN_SCORE_THREADS 256
#define KNN_WARP 32
#define KNN_QGROUP 16
#define KNN_SCORE_MAX_BLOCKS 65535u
/* Queries go to shared memory when they fit the default 48 KiB (B = 16 up to
 * D = 768, B = 1 up to D = 12288); else they are read through L1. */
#define KNN_SCORE_SMEM_MAX (48u * 1024u)

/* Adds x * q[qb][col] for the group's queries to acc. */
static __device__ __forceinline__ void knn_fma_queries(float acc[KNN_QGROUP], float x,
                                                       const float *__restrict__ q, // (qn, d) group start
                                                       int qn, int d, int col)
{
#pragma unroll
    for (int qb = 0; qb < KNN_QGROUP; qb++)
        if (qb < qn)
            acc[qb] = fmaf(x, q[(size_t)qb * d + col], acc[qb]);
}

static __device__ __forceinline__ float knn_load(const float *rows, size_t i) { return __ldg(rows + i); }
static __device__ __forceinline__ float knn_load(const __half *rows, size_t i) { return __half2float(rows[i]); }

/* One row's dot products with the qn queries of a group, into acc (every lane
 * holds partial sums; the caller reduces). VEC: 16-byte loads are legal. */
template <typename T, bool VEC>
static __device__ __forceinline__ void knn_row_dots(const T *__restrict__ row, // (d)
                                                    const float *__restrict__ q, int qn, int d,
                                                    float acc[KNN_QGROUP])
{
    const int lane = threadIdx.x % KNN_WARP;
    if (VEC) {
        constexpr int per = 16 / sizeof(T); /* elements per 16-byte load */
        const uint4 *v = reinterpret_cast<const uint4 *>(row);
        for (int c = lane; c < d / per; c += KNN_WARP) {
            uint4 w = __ldg(v + c);
            const T *e = reinterpret_cast<const T *>(&w);
#pragma unroll
            for (int i = 0; i < per; i++) {
                float x;
                if constexpr (sizeof(T) == 2)
                    x = __half2float(e[i]);
                else
                    x = e[i];
                knn_fma_queries(acc, x, q, qn, d, c * per + i);
            }
        }
    } else {
        for (int c = lane; c < d; c += KNN_WARP)
            knn_fma_queries(acc, knn_load(row, (size_t)c), q, qn, d, c);
    }
}

template <typename T, bool VEC, bool SMEM>
static __global__ void __launch_bounds__(KNN_SCORE_THREADS)
    knn_scores_kernel(const T *__restrict__ rows,      // (n, d)
                      const float *__restrict__ queries, // (b, d)
                      float *__restrict__ scores,      // (b, ld): columns 0..n-1 written
                      int n, int d, int b, int ld)
{
    extern __shared__ float query_smem[]; // (b, d) when SMEM
    if (SMEM) {
        for (size_t i = threadIdx.x; i < (size_t)b * d; i += blockDim.x)
            query_smem[i] = queries[i];
        __syncthreads();
        queries = query_smem;
    }
    const int warps_per_block = KNN_SCORE_THREADS / KNN_WARP;
    const int lane = threadIdx.x % KNN_WARP;
    const size_t warp = (size_t)blockIdx.x * warps_per_block + threadIdx.x / KNN_WARP;
    const size_t warps = (size_t)gridDim.x * warps_per_block;
    for (size_t r = warp; r < (size_t)n; r += warps) {
        const T *row = rows + r * (size_t)d;
        for (int q0 = 0; q0 < b; q0 += KNN_QGROUP) {
            int qn = b - q0 < KNN_QGROUP ? b - q0 : KNN_QGROUP;
            float acc[KNN_QGROUP];
#pragma unroll
            for (int i = 0; i < KNN_QGROUP; i++)
                acc[i] = 0.0f;
            knn_row_dots<T, VEC>(row, queries + (size_t)q0 * d, qn, d, acc);
#pragma unroll
            for (int i = 0; i < KNN_QGROUP; i++) {
                float v = acc[i];
                for (int off = KNN_WARP / 2; off > 0; off /= 2)
                    v += __shfl_xor_sync(0xffffffffu, v, off);
                if (lane == 0 && i < qn)
                    scores[(size_t)(q0 + i) * ld + r] = v;
            }
        }
    }
}

template <typename T, bool VEC>
static void knn_scores_launch_vec(const T *rows, const float *queries, float *scores, int n, int d, int b, int ld,
                                  unsigned int blocks, cudaStream_t s)
{
    size_t smem = (size_t)b * d * sizeof(float);
    if (smem <= KNN_SCORE_SMEM_MAX)
        knn_scores_kernel<T, VEC, true><<<blocks, KNN_SCORE_THREADS, smem, s>>>(rows, queries, scores, n, d, b, ld);
    else
        knn_scores_kernel<T, VEC, false><<<blocks, KNN_SCORE_THREADS, 0, s>>>(rows, queries, scores, n, d, b, ld);
}

template <typename T>
static cudaError_t knn_scores_launch(const T *rows, const float *queries, float *scores, int n, int d, int b, int ld,
                                     cudaStream_t s)
{
    const int per = 16 / (int)sizeof(T);
    bool vec = d % per == 0 && (reinterpret_cast<uintptr_t>(rows) % 16) == 0;
    unsigned int warps_per_block = KNN_SCORE_THREADS / KNN_WARP;
    unsigned int blocks = cuda_grid_blocks((size_t)n, warps_per_block, KNN_SCORE_MAX_BLOCKS);
    if (vec)
        knn_scores_launch_vec<T, true>(rows, queries, scores, n, d, b, ld, blocks, s);
    else
        knn_scores_launch_vec<T, false>(rows, queries, scores, n, d, b, ld, blocks, s);
    return cudaGetLastError();
}

extern "C" cudaError_t imsi_cuda_knn_scores(const void *rows, // (n, d) f32 or f16
                                            int rows_f16,
                                            const float *queries, // (b, d)
                                            float *scores,        // (b, ld)
                                            int n, int d, int b, int ld, cudaStream_t s)
{
    if (n <= 0 || b <= 0 || d <= 0)
        return cudaSuccess;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (rows_f16)
        return knn_scores_launch(static_cast<const __half *>(rows), queries, scores, n, d, b, ld, s);
    return knn_scores_launch(static_cast<const float *>(rows), queries, scores, n, d, b, ld, s);
}
