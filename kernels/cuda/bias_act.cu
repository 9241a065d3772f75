/* bias_act.cu: the bias_act op's kernel (contract: engine/backend/backend.h; CPU
 * reference: kernels/cpu/bias_act.c).
 *
 * Elementwise, so y may be x. Grid-stride over M x N with size_t indices. GELU in float with erff (CUDA's erff is
 * within 2 ulp), against the CPU's double erf: differences of an f32 ulp or two.
 */
#include "launch.h"
#include "text_common.cuh"

#define BIAS_ACT_BLOCK 256
#define BIAS_ACT_MAX_BLOCKS 8192u

template <typename T>
static __global__ void __launch_bounds__(BIAS_ACT_BLOCK)
    bias_act_kernel(const T *x,                     // (M, N)
                    const float *__restrict__ bias, // (N)
                    T *y,                           // (M, N), may be x
                    int gelu, size_t total, int n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float v = act_load(x, i) + bias[i % (size_t)n];
        if (gelu)
            v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
        act_store(y, i, v);
    }
}

extern "C" cudaError_t imsi_cuda_bias_act(const void *x, const float *bias, void *y, int f16, int gelu, int m, int n,
                                          cudaStream_t s)
{
    size_t total = (size_t)m * (size_t)n;
    if (m <= 0 || n <= 0)
        return cudaSuccess;
    unsigned int blocks = cuda_grid_blocks(total, BIAS_ACT_BLOCK, BIAS_ACT_MAX_BLOCKS);
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (f16)
        bias_act_kernel<<<blocks, BIAS_ACT_BLOCK, 0, s>>>((const uint16_t *)x, bias, (uint16_t *)y, gelu, total, n);
    else
        bias_act_kernel<<<blocks, BIAS_ACT_BLOCK, 0, s>>>((const float *)x, bias, (float *)y, gelu, total, n);
    return cudaGetLastError();
}
