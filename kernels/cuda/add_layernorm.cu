/* add_layernorm.cu: the add_layernorm op's kernel (contract: engine/backend/backend.h;
 * CPU reference: kernels/cpu/add_layernorm.c).
 *
 * One block per row (grid-stride, capped), threads striding over
 * H; sum and statistics in double (two passes, then the write pass), as the
 * CPU reference. y may be residual: each thread writes only the elements it
 * alone reads, after its last read of them.
 */
#include "launch.h"
#include "text_common.cuh"

#define ALN_MAX_BLOCKS 65535u

template <typename T>
static __device__ __forceinline__ double aln_value(const T *x, const float *bias, const T *residual, size_t at,
                                                   int i)
{
    return (double)act_load(x, at + i) + (bias ? (double)bias[i] : 0.0) + (double)act_load(residual, at + i);
}

template <typename T>
static __global__ void __launch_bounds__(TEXT_MAX_THREADS)
    add_layernorm_kernel(const T *__restrict__ x,           // (M, H)
                         const float *__restrict__ bias,    // (H) or NULL
                         const T *residual,                 // (M, H), may be y
                         const float *__restrict__ gamma,   // (H)
                         const float *__restrict__ beta,    // (H)
                         double eps, T *y,                  // (M, H)
                         int m, int h)
{
    __shared__ double sums[TEXT_MAX_THREADS / TEXT_WARP];
    for (int r = blockIdx.x; r < m; r += gridDim.x) {
        size_t at = (size_t)r * h;
        double s = 0.0;
        for (int i = threadIdx.x; i < h; i += blockDim.x)
            s += aln_value(x, bias, residual, at, i);
        double mean = block_sum_double(s, sums) / h;
        double v = 0.0;
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double d = aln_value(x, bias, residual, at, i) - mean;
            v += d * d;
        }
        double inv = 1.0 / sqrt(block_sum_double(v, sums) / h + eps);
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double d = aln_value(x, bias, residual, at, i) - mean;
            act_store(y, at + i, (float)(d * inv * gamma[i] + beta[i]));
        }
    }
}

extern "C" cudaError_t imsi_cuda_add_layernorm(const void *x, const float *bias, const void *residual,
                                               const float *gamma, const float *beta, double eps, void *y, int f16, int m,
                                               int h, cudaStream_t s)
{
    if (m <= 0 || h <= 0)
        return cudaSuccess;
    unsigned int threads = text_row_threads(h);
    unsigned int blocks = (unsigned int)m < ALN_MAX_BLOCKS ? (unsigned int)m : ALN_MAX_BLOCKS;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (f16)
        add_layernorm_kernel<<<blocks, threads, 0, s>>>((const uint16_t *)x, bias, (const uint16_t *)residual, gamma,
                                                        beta, eps, (uint16_t *)y, m, h);
    else
        add_layernorm_kernel<<<blocks, threads, 0, s>>>((const float *)x, bias, (const float *)residual, gamma, beta,
                                                        eps, (float *)y, m, h);
    return cudaGetLastError();
}
