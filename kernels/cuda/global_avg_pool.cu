/* global_avg_pool.cu: the global_avg_pool op's kernel (contract:
 * engine/backend/backend.h; CPU reference: kernels/cpu/pool2d.c). One thread
 * per (n, c), summing in double; consecutive threads read consecutive
 * channels. */
#include "launch.h"

#include <cuda_fp16.h>

#define GAP_THREADS 256
#define GAP_MAX_BLOCKS 65535u

static __global__ void global_avg_pool_kernel(const void *__restrict__ x, // (n, hw, c)
                                              float *__restrict__ y,      // (n, c)
                                              int n, int hw, int c, int f16)
{
    size_t total = (size_t)n * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t b = i / c, ch = i % c;
        double acc = 0.0;
        for (int p = 0; p < hw; p++) {
            size_t at = (b * hw + p) * c + ch;
            acc += f16 ? (double)__half2float(((const __half *)x)[at]) : (double)((const float *)x)[at];
        }
        y[i] = (float)(acc / hw);
    }
}

extern "C" cudaError_t imsi_cuda_global_avg_pool_nhwc(const void *x, float *y, int n, int hw, int c, int f16,
                                                      cudaStream_t s)
{
    size_t total = (size_t)n * c;
    if (total == 0 || hw <= 0)
        return cudaSuccess;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    global_avg_pool_kernel<<<cuda_grid_blocks(total, GAP_THREADS, GAP_MAX_BLOCKS), GAP_THREADS, 0, s>>>(x, y, n, hw,
                                                                                                        c, f16);
    return cudaGetLastError();
}
