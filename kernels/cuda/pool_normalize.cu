/* pool_normalize.cu: the pool_normalize op's kernel (contract:
 * engine/backend/backend.h; CPU reference: kernels/cpu/pool_normalize.c).
 *
 * One block per sequence,
 * threads striding over H, each summing its columns over the real tokens in
 * double; the squared norm is a double block sum. Same arithmetic as the CPU.
 */
#include "launch.h"
#include "text_common.cuh"

#define POOL_MAX_BLOCKS 65535u

template <typename T>
static __global__ void __launch_bounds__(TEXT_MAX_THREADS)
    pool_normalize_kernel(const T *__restrict__ x,            // (B, T, H)
                          const int32_t *__restrict__ lengths, // (B)
                          float *__restrict__ y,               // (B, H)
                          int cls, int normalize, int b, int t, int h)
{
    __shared__ double sums[TEXT_MAX_THREADS / TEXT_WARP];
    for (int bi = blockIdx.x; bi < b; bi += gridDim.x) {
        int len = lengths[bi] < 1 ? 1 : lengths[bi] > t ? t : lengths[bi];
        int n = cls ? 1 : len;
        double ss = 0.0;
        /* first pass: the norm (each thread keeps no state across columns) */
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double acc = 0.0;
            for (int s = 0; s < n; s++)
                acc += act_load(x, ((size_t)bi * t + s) * h + i);
            acc /= n;
            ss += acc * acc;
        }
        ss = block_sum_double(ss, sums);
        double scale = 1.0;
        if (normalize)
            scale = ss > 0.0 && isfinite(ss) ? 1.0 / sqrt(ss) : 0.0;
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double acc = 0.0;
            for (int s = 0; s < n; s++)
                acc += act_load(x, ((size_t)bi * t + s) * h + i);
            y[(size_t)bi * h + i] = (float)(acc / n * scale);
        }
    }
}

extern "C" cudaError_t imsi_cuda_pool_normalize(const void *x, const int32_t *lengths, float *y, int f16, int cls,
                                                int normalize, int b, int t, int h, cudaStream_t s)
{
    if (b <= 0 || t <= 0 || h <= 0)
        return cudaSuccess;
    unsigned int threads = text_row_threads(h);
    unsigned int blocks = (unsigned int)b < POOL_MAX_BLOCKS ? (unsigned int)b : POOL_MAX_BLOCKS;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (f16)
        pool_normalize_kernel<<<blocks, threads, 0, s>>>((const uint16_t *)x, lengths, y, cls, normalize, b, t, h);
    else
        pool_normalize_kernel<<<blocks, threads, 0, s>>>((const float *)x, lengths, y, cls, normalize, b, t, h);
    return cudaGetLastError();
}
