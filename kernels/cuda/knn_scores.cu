/* knn_scores.cu: the streaming score kernels of the small-batch k-NN path.
 *
 * scores[q][j] = queries[q] . rows[j] for a slice of table rows, f16 or f32,
 * fp32 accumulation, written into a score tile with row stride ld (the
 * selection kernel, knn_select.cu, reads it next). For B <= 16 this is one
 * streaming pass over the table, to run at memory bandwidth.
 *
 * The register kernel (the common shapes: D = 32 * VPL * E, e.g. 128..768
 * for f16 and 128..384 for f32): a warp's lane always reads the same columns
 * of every row (VPL vectors of E elements, 8- or 16-byte loads; the warp's
 * loads of one row are contiguous), so the lane keeps its slice of NQ queries
 * (VPL * E * NQ floats) in registers, loaded once: no shared memory in the
 * inner loop, no bank conflicts. A warp takes tiles of R = 32 / NQ rows; each
 * lane accumulates its 32 partial sums (R rows x NQ queries) and one
 * butterfly reduction per tile (31 shuffles, knn_reduce32) leaves lane L the
 * full sum of pair L: one shuffle per score instead of five per query and
 * row. Batches above NQ queries run as query groups on neighbouring blocks
 * (blockIdx.x % groups), which read the same rows at about the same time, so
 * the second read comes from L2.
 *
 * The general kernel (any D): one warp per row, queries in shared memory
 * (as before; kept for odd dimensions).
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
static cudaError_t knn_scores_general(const T *rows, const float *queries, float *scores, int n, int d, int b, int ld,
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


/* ---- The register kernel -------------------------------------------------------------- */

/* E elements of type T as one 8- or 16-byte load. */
template <typename T, int E> struct knn_vec;
template <> struct knn_vec<__half, 8> { typedef uint4 type; };
template <> struct knn_vec<__half, 4> { typedef uint2 type; };
template <> struct knn_vec<float, 4> { typedef uint4 type; };

template <typename T, int E>
static __device__ __forceinline__ void knn_unpack(const typename knn_vec<T, E>::type &w, float x[E])
{
    if constexpr (sizeof(T) == 2) {
        const __half2 *h = reinterpret_cast<const __half2 *>(&w);
#pragma unroll
        for (int i = 0; i < E / 2; i++) {
            float2 f = __half22float2(h[i]);
            x[2 * i] = f.x;
            x[2 * i + 1] = f.y;
        }
    } else {
        const float *f = reinterpret_cast<const float *>(&w);
#pragma unroll
        for (int i = 0; i < E; i++)
            x[i] = f[i];
    }
}

/* v[0..31] of every lane -> lane L's v[0] is the warp's sum of v[L]: each
 * step halves the live values, a lane keeping the half its lane bit selects
 * and adding its partner's copy of that half (16 + 8 + 4 + 2 + 1 shuffles). */
template <int O> static __device__ __forceinline__ void knn_reduce_step(float v[32], int lane)
{
    const bool upper = (lane & O) != 0;
#pragma unroll
    for (int i = 0; i < O; i++) {
        float keep = upper ? v[i + O] : v[i], send = upper ? v[i] : v[i + O];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, O);
    }
}

static __device__ __forceinline__ void knn_reduce32(float v[32], int lane)
{
    knn_reduce_step<16>(v, lane);
    knn_reduce_step<8>(v, lane);
    knn_reduce_step<4>(v, lane);
    knn_reduce_step<2>(v, lane);
    knn_reduce_step<1>(v, lane);
}

template <typename T, int E, int VPL, int NQ>
static __global__ void __launch_bounds__(KNN_SCORE_THREADS)
    knn_scores_reg_kernel(const T *__restrict__ rows,        // (n, d), d = 32 * VPL * E
                          const float *__restrict__ queries, // (b, d)
                          float *__restrict__ scores,        // (b, ld)
                          int n, int b, int ld, int groups)
{
    constexpr int D = KNN_WARP * VPL * E, R = KNN_WARP / NQ;
    typedef typename knn_vec<T, E>::type vec;
    const int lane = threadIdx.x % KNN_WARP;
    const int group = (int)(blockIdx.x % (unsigned int)groups), q0 = group * NQ;
    const int qn = b - q0 < NQ ? b - q0 : NQ;
    /* This lane's columns of the group's queries; absent queries are 0. */
    float qs[VPL][E][NQ];
#pragma unroll
    for (int j = 0; j < VPL; j++)
#pragma unroll
        for (int e = 0; e < E; e++)
#pragma unroll
            for (int qb = 0; qb < NQ; qb++)
                qs[j][e][qb] = qb < qn ? __ldg(queries + (size_t)(q0 + qb) * D + (j * KNN_WARP + lane) * E + e) : 0.0f;
    const size_t warps_per_block = KNN_SCORE_THREADS / KNN_WARP;
    const size_t warp = (size_t)(blockIdx.x / (unsigned int)groups) * warps_per_block + threadIdx.x / KNN_WARP;
    const size_t warps = (size_t)(gridDim.x / (unsigned int)groups) * warps_per_block;
    const size_t tiles = ((size_t)n + R - 1) / R;
    for (size_t tile = warp; tile < tiles; tile += warps) {
        const size_t r0 = tile * R;
        float part[32];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const size_t row = r0 + r;
            float acc[NQ];
#pragma unroll
            for (int qb = 0; qb < NQ; qb++)
                acc[qb] = 0.0f;
            if (row < (size_t)n) {
                const vec *v = reinterpret_cast<const vec *>(rows + row * D);
#pragma unroll
                for (int j = 0; j < VPL; j++) {
                    float x[E];
                    knn_unpack<T, E>(__ldg(v + j * KNN_WARP + lane), x);
#pragma unroll
                    for (int e = 0; e < E; e++)
#pragma unroll
                        for (int qb = 0; qb < NQ; qb++)
                            acc[qb] = fmaf(x[e], qs[j][e][qb], acc[qb]);
                }
            }
#pragma unroll
            for (int qb = 0; qb < NQ; qb++)
                part[r * NQ + qb] = acc[qb];
        }
        knn_reduce32(part, lane);
        const int r = lane / NQ, qb = lane % NQ;
        if (qb < qn && r0 + r < (size_t)n)
            scores[(size_t)(q0 + qb) * ld + r0 + r] = part[0];
    }
}

/* Query groups of NQ: NQ is the smallest of 1, 2, 4, 8 that covers b, at most nq_max. */
template <typename T, int E, int VPL, int NQ>
static void knn_scores_reg_launch(const T *rows, const float *queries, float *scores, int n, int b, int ld,
                                  cudaStream_t s)
{
    const int groups = (b + NQ - 1) / NQ, rows_per_block = (KNN_SCORE_THREADS / KNN_WARP) * (KNN_WARP / NQ);
    unsigned int blocks = cuda_grid_blocks((size_t)n, (unsigned int)rows_per_block, KNN_SCORE_MAX_BLOCKS / 16u);
    knn_scores_reg_kernel<T, E, VPL, NQ>
        <<<blocks * (unsigned int)groups, KNN_SCORE_THREADS, 0, s>>>(rows, queries, scores, n, b, ld, groups);
}

template <typename T, int E, int VPL, int NQMAX>
static void knn_scores_reg_pick(const T *rows, const float *queries, float *scores, int n, int b, int ld,
                                cudaStream_t s)
{
    if (b <= 1)
        knn_scores_reg_launch<T, E, VPL, 1>(rows, queries, scores, n, b, ld, s);
    else if (b <= 2)
        knn_scores_reg_launch<T, E, VPL, 2>(rows, queries, scores, n, b, ld, s);
    else if (b <= 4 || NQMAX == 4)
        knn_scores_reg_launch<T, E, VPL, 4>(rows, queries, scores, n, b, ld, s);
    else
        knn_scores_reg_launch<T, E, VPL, NQMAX>(rows, queries, scores, n, b, ld, s);
}

/* The register kernel where D fits it (rows 16-byte aligned); 0 where not. At
 * most 96 query floats per lane in registers: NQ 8 up to 12 columns a lane. */
template <typename T, int E>
static int knn_scores_reg_vpl(const T *rows, const float *queries, float *scores, int n, int d, int b, int ld,
                              cudaStream_t s)
{
    switch (d / (KNN_WARP * E) * (d % (KNN_WARP * E) == 0)) {
    case 1:
        knn_scores_reg_pick<T, E, 1, (E <= 12 ? 8 : 4)>(rows, queries, scores, n, b, ld, s);
        return 1;
    case 2:
        knn_scores_reg_pick<T, E, 2, (2 * E <= 12 ? 8 : 4)>(rows, queries, scores, n, b, ld, s);
        return 1;
    case 3:
        knn_scores_reg_pick<T, E, 3, (3 * E <= 12 ? 8 : 4)>(rows, queries, scores, n, b, ld, s);
        return 1;
    default:
        return 0;
    }
}

static int knn_scores_registers(const __half *rows, const float *queries, float *scores, int n, int d, int b, int ld,
                                cudaStream_t s)
{
    if (d % 256 == 0 && knn_scores_reg_vpl<__half, 8>(rows, queries, scores, n, d, b, ld, s))
        return 1; /* 16-byte loads: D = 256, 512, 768 */
    return knn_scores_reg_vpl<__half, 4>(rows, queries, scores, n, d, b, ld, s); /* 8-byte: 128, 384 */
}

static int knn_scores_registers(const float *rows, const float *queries, float *scores, int n, int d, int b, int ld,
                                cudaStream_t s)
{
    return knn_scores_reg_vpl<float, 4>(rows, queries, scores, n, d, b, ld, s); /* D = 128, 256, 384 */
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
    if (rows_f16) {
        const __half *r = static_cast<const __half *>(rows);
        if (reinterpret_cast<uintptr_t>(rows) % 16 == 0 && knn_scores_registers(r, queries, scores, n, d, b, ld, s))
            return cudaGetLastError();
        return knn_scores_general(r, queries, scores, n, d, b, ld, s);
    }
    const float *r = static_cast<const float *>(rows);
    if (reinterpret_cast<uintptr_t>(rows) % 16 == 0 && knn_scores_registers(r, queries, scores, n, d, b, ld, s))
        return cudaGetLastError();
    return knn_scores_general(r, queries, scores, n, d, b, ld, s);
}
