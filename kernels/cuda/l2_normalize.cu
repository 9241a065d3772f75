/* l2_normalize.cu: the l2_normalize_rows op's kernel (contract:
 * engine/backend/backend.h; CPU reference: kernels/cpu/l2_normalize.c).
 *
 * Layout: one block per row (grid-stride over rows, grid capped at 65535), the
 * block's threads striding over the row's columns. Block size: 256 threads, or
 * d rounded up to a warp when d < 256 (d = 1 runs one warp per row, not 8 warps
 * of which 7 idle). The rows here are embeddings (d = 512..2048) and a batch has
 * hundreds to thousands of them, so a block per row gives each thread 2..8
 * coalesced loads per pass and enough blocks to fill the GPU, where a warp per
 * row would leave each lane 16..64 serial loads and, for small batches, most
 * SMs idle. Two passes over the row (sum of squares, then scale); the second
 * re-reads the row, which the first left in L1/L2.
 *
 * Precision: the sum of squares is accumulated in double per thread and reduced
 * in double (warp shuffles, then one value per warp through shared memory), and
 * the scale 1 / norm and each product x * scale are double, rounded once to f32
 * as the CPU reference does. So the only difference from the CPU is the order
 * of a double sum (about 1e-16 relative): norms and y agree to within one f32
 * rounding, f16 outputs to within one f16 ulp (almost always bit for bit).
 * A float accumulator would be slower to no benefit (this kernel is memory
 * bound; an H100 does FP64 at half the FP32 rate) and wrong at the edges: x^2
 * overflows f32 for |x| > 1.8e19 and underflows for |x| < 1e-19, where the CPU
 * reference still gets a finite, nonzero norm and a unit vector. --use_fast_math
 * would not change these results: it affects f32 math only, and __float2half_rn
 * always rounds to nearest even.
 */
#include "launch.h"

#include <cuda_fp16.h>

#define L2_MAX_THREADS 256
#define L2_MAX_BLOCKS 65535u
#define L2_WARP 32

/* The sum of v over the block, returned in every thread. shared: one slot per
 * warp. The xor butterfly gives every lane the same bits (each step adds the
 * same two values in every lane), so all threads agree on the norm. */
static __device__ double block_sum(double v, double *shared /* (L2_MAX_THREADS / 32) */)
{
    for (int offset = L2_WARP / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    unsigned int warps = blockDim.x / L2_WARP;
    if (warps == 1) /* uniform across the block */
        return v;
    unsigned int lane = threadIdx.x % L2_WARP;
    if (lane == 0)
        shared[threadIdx.x / L2_WARP] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0;
    for (int offset = L2_WARP / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    __syncthreads(); /* shared is rewritten by the next row */
    return v;
}

static __global__ void __launch_bounds__(L2_MAX_THREADS)
    l2_normalize_rows_kernel(const float *__restrict__ x, // (n, d)
                             float *__restrict__ y_f32,   // (n, d) or NULL
                             uint16_t *__restrict__ y_f16, // (n, d) or NULL
                             float *__restrict__ norms,   // (n)
                             int n, int d)
{
    __shared__ double warp_sums[L2_MAX_THREADS / L2_WARP];
    /* Unsigned column index: i < d <= INT_MAX plus blockDim.x cannot wrap. */
    unsigned int cols = (unsigned int)d;
    for (size_t r = blockIdx.x; r < (size_t)n; r += gridDim.x) {
        const float *row = x + r * (size_t)d; // (d)
        double ss = 0.0;
        for (unsigned int i = threadIdx.x; i < cols; i += blockDim.x) {
            double v = row[i];
            ss = fma(v, v, ss); /* v * v is exact in double, as on the CPU */
        }
        ss = block_sum(ss, warp_sums);
        double norm = sqrt(ss);
        if (threadIdx.x == 0)
            norms[r] = (float)norm;
        double scale = (norm > 0.0 && isfinite(norm)) ? 1.0 / norm : 0.0;
        for (unsigned int i = threadIdx.x; i < cols; i += blockDim.x) {
            float v = scale > 0.0 ? (float)(row[i] * scale) : 0.0f;
            if (y_f16)
                y_f16[r * (size_t)d + i] = __half_as_ushort(__float2half_rn(v));
            else
                y_f32[r * (size_t)d + i] = v;
        }
    }
}

extern "C" cudaError_t imsi_cuda_l2_normalize_rows(const float *x, // (n, d)
                                                   float *y_f32,   // (n, d) or NULL
                                                   uint16_t *y_f16, // (n, d) or NULL
                                                   float *norms,   // (n)
                                                   int n, int d, cudaStream_t s)
{
    if (n <= 0 || d <= 0)
        return cudaSuccess;
    if ((y_f32 == NULL) == (y_f16 == NULL))
        return cudaErrorInvalidValue;
    unsigned int threads = d >= L2_MAX_THREADS ? L2_MAX_THREADS : (unsigned int)(d + L2_WARP - 1) / L2_WARP * L2_WARP;
    unsigned int blocks = (unsigned int)n < L2_MAX_BLOCKS ? (unsigned int)n : L2_MAX_BLOCKS;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    l2_normalize_rows_kernel<<<blocks, threads, 0, s>>>(x, y_f32, y_f16, norms, n, d);
    return cudaGetLastError();
}
