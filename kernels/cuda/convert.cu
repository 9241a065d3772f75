/* convert.cu: the convert op's kernels (contract: engine/backend/backend.h; CPU
 * reference: kernels/cpu/convert.c).
 *
 * f16 values travel as uint16_t bits (the C side has no half type). f32 -> f16
 * uses __float2half_rn (round to nearest, ties to even; overflow to Inf; NaN
 * stays NaN), which ims_f32_to_f16 reproduces bit for bit for every non-NaN
 * input. f16 -> f32 is exact.
 *
 * Grid-stride loops with size_t indices: n may exceed 2^31, and the grid is
 * capped (CONVERT_MAX_BLOCKS) so its size never overflows; 8192 blocks of 256
 * are several waves on an H100 (132 SMs x 8 resident blocks), enough to keep
 * the memory system busy, which is all an elementwise kernel needs.
 */
#include "launch.h"

#include <cuda_fp16.h>

#define CONVERT_BLOCK 256
#define CONVERT_MAX_BLOCKS 8192

static __global__ void __launch_bounds__(CONVERT_BLOCK)
    convert_f32_to_f16_kernel(const float *__restrict__ src, // (n)
                              uint16_t *__restrict__ dst,    // (n)
                              size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = __half_as_ushort(__float2half_rn(src[i]));
}

static __global__ void __launch_bounds__(CONVERT_BLOCK)
    convert_f16_to_f32_kernel(const uint16_t *__restrict__ src, // (n)
                              float *__restrict__ dst,          // (n)
                              size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = __half2float(__ushort_as_half(src[i]));
}

extern "C" cudaError_t imsi_cuda_convert_f32_to_f16(const float *src, // (n)
                                                    uint16_t *dst,    // (n)
                                                    size_t n, cudaStream_t s)
{
    if (n == 0)
        return cudaSuccess;
    unsigned int blocks = cuda_grid_blocks(n, CONVERT_BLOCK, CONVERT_MAX_BLOCKS);
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    convert_f32_to_f16_kernel<<<blocks, CONVERT_BLOCK, 0, s>>>(src, dst, n);
    return cudaGetLastError();
}

extern "C" cudaError_t imsi_cuda_convert_f16_to_f32(const uint16_t *src, // (n)
                                                    float *dst,          // (n)
                                                    size_t n, cudaStream_t s)
{
    if (n == 0)
        return cudaSuccess;
    unsigned int blocks = cuda_grid_blocks(n, CONVERT_BLOCK, CONVERT_MAX_BLOCKS);
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    convert_f16_to_f32_kernel<<<blocks, CONVERT_BLOCK, 0, s>>>(src, dst, n);
    return cudaGetLastError();
}
