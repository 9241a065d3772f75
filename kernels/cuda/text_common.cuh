/* text_common.cuh: device helpers shared by the text encoder's kernels.
 *
 * Activations are f32 (float) or f16 (IEEE binary16 bits in uint16_t, as the C
 * side stores them); act_load/act_store convert to and from float so one
 * kernel template serves both. block_sum_double reduces a double over a block
 * whose size is a multiple of 32 (at most TEXT_MAX_THREADS), result in every thread.
 */
#ifndef IMS_TEXT_COMMON_CUH
#define IMS_TEXT_COMMON_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#define TEXT_MAX_THREADS 256
#define TEXT_WARP 32

static __device__ __forceinline__ float act_load(const float *p, size_t i) { return p[i]; }
static __device__ __forceinline__ float act_load(const uint16_t *p, size_t i)
{
    return __half2float(__ushort_as_half(p[i]));
}
static __device__ __forceinline__ void act_store(float *p, size_t i, float v) { p[i] = v; }
static __device__ __forceinline__ void act_store(uint16_t *p, size_t i, float v)
{
    p[i] = __half_as_ushort(__float2half_rn(v));
}

/* shared: TEXT_MAX_THREADS / 32 slots. Ends with a barrier, so shared may be
 * reused right after. */
static __device__ double block_sum_double(double v, double *shared)
{
    for (int offset = TEXT_WARP / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    unsigned int warps = blockDim.x / TEXT_WARP, lane = threadIdx.x % TEXT_WARP;
    if (warps == 1)
        return v;
    if (lane == 0)
        shared[threadIdx.x / TEXT_WARP] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0;
    for (int offset = TEXT_WARP / 2; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    __syncthreads();
    return v;
}

/* Threads for a block per row of h columns: h rounded up to a warp, at most
 * TEXT_MAX_THREADS. */
static inline unsigned int text_row_threads(int h)
{
    return h >= TEXT_MAX_THREADS ? TEXT_MAX_THREADS : (unsigned int)(h + TEXT_WARP - 1) / TEXT_WARP * TEXT_WARP;
}

#endif /* IMS_TEXT_COMMON_CUH */
