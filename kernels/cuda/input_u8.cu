/* input_u8.cu: the input_u8 op's kernel (contract: engine/backend/backend.h;
 * CPU reference: kernels/cpu/input_u8.c): the same two f32 operations, unfused,
 * so the f32 results are identical. */
#include "launch.h"

#include <cuda_fp16.h>

#define INPUT_THREADS 256
#define INPUT_MAX_BLOCKS 65535u

static __global__ void input_u8_kernel(const uint8_t *__restrict__ x, // (pixels, 3)
                                       void *__restrict__ y,          // (pixels, 3)
                                       size_t n, float s0, float s1, float s2, float h0, float h1, float h2,
                                       int f16)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % 3);
        float scale = c == 0 ? s0 : c == 1 ? s1 : s2, shift = c == 0 ? h0 : c == 1 ? h1 : h2;
        float v = __fadd_rn(__fmul_rn((float)x[i], scale), shift); /* no FMA contraction: as the CPU */
        if (f16)
            ((__half *)y)[i] = __float2half_rn(v);
        else
            ((float *)y)[i] = v;
    }
}

extern "C" cudaError_t imsi_cuda_input_u8(const uint8_t *x, void *y, size_t pixels, const float scale[3],
                                          const float shift[3], int f16, cudaStream_t s)
{
    size_t n = pixels * 3;
    if (n == 0)
        return cudaSuccess;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    input_u8_kernel<<<cuda_grid_blocks(n, INPUT_THREADS, INPUT_MAX_BLOCKS), INPUT_THREADS, 0, s>>>(
        x, y, n, scale[0], scale[1], scale[2], shift[0], shift[1], shift[2], f16);
    return cudaGetLastError();
}
