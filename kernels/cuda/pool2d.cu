/* pool2d.cu: the pool2d op's kernel (contract: engine/backend/backend.h; CPU
 * reference: kernels/cpu/pool2d.c), f32 or f16 (then computed in f32).
 *
 * One thread per output element (n, oy, ox, c), channels fastest so that a
 * warp reads consecutive channels of one pixel.
 */
#include "launch.h"

#include <cuda_fp16.h>

#define POOL_THREADS 256
#define POOL_MAX_BLOCKS 65535u

static __device__ __forceinline__ float load_act(const void *p, size_t i, int f16)
{
    return f16 ? __half2float(((const __half *)p)[i]) : ((const float *)p)[i];
}

static __device__ __forceinline__ void store_act(void *p, size_t i, float v, int f16)
{
    if (f16)
        ((__half *)p)[i] = __float2half_rn(v);
    else
        ((float *)p)[i] = v;
}

static __global__ void pool2d_kernel(const void *__restrict__ x, // (n, h, w, c)
                                     void *__restrict__ y,       // (n, oh, ow, y_channels) from y_offset
                                     int n, int h, int w, int c, int max, int k, int stride, int pad,
                                     int include_pad, int oh, int ow, int y_channels, int y_offset, int f16)
{
    size_t total = (size_t)n * oh * ow * c;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        size_t pix = i / c;
        int ox = (int)(pix % ow);
        int oy = (int)(pix / ow % oh);
        int b = (int)(pix / ((size_t)ow * oh));
        int y0 = oy * stride - pad, x0 = ox * stride - pad;
        float acc = max ? -INFINITY : 0.0f;
        int inside = 0;
        for (int ky = 0; ky < k; ky++) {
            int iy = y0 + ky;
            if (iy < 0 || iy >= h)
                continue;
            for (int kx = 0; kx < k; kx++) {
                int ix = x0 + kx;
                if (ix < 0 || ix >= w)
                    continue;
                float v = load_act(x, (((size_t)b * h + iy) * w + ix) * c + ch, f16);
                acc = max ? fmaxf(acc, v) : acc + v;
                inside++;
            }
        }
        float out = max ? acc : acc / (float)(include_pad ? k * k : inside);
        store_act(y, pix * y_channels + y_offset + ch, out, f16);
    }
}

extern "C" cudaError_t imsi_cuda_pool2d_nhwc(const void *x, void *y, int n, int h, int w, int c, int max, int k,
                                             int stride, int pad, int include_pad, int oh, int ow, int y_channels,
                                             int y_offset, int f16, cudaStream_t s)
{
    size_t total = (size_t)n * oh * ow * c;
    if (total == 0)
        return cudaSuccess;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    pool2d_kernel<<<cuda_grid_blocks(total, POOL_THREADS, POOL_MAX_BLOCKS), POOL_THREADS, 0, s>>>(
        x, y, n, h, w, c, max, k, stride, pad, include_pad, oh, ow, y_channels, y_offset, f16);
    return cudaGetLastError();
}
