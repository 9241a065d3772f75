/* masked_softmax.cu: softmax of attention scores over each sequence's real keys, in place.
 *
 * scores (B, heads, T, T) f32 or f16: row (b, h, q) holds the scaled dots of
 * query q with every key. Keys k < lengths[b] get softmax weights (max
 * subtracted, sums in float); keys past the length get 0, so the following
 * P . V GEMM ignores padding. One warp per row, lanes striding over keys; 8
 * warps per block. The CPU reference is the whole attention op
 * (kernels/cpu/attention.c); tests compare the op end to end.
 */
#include "launch.h"
#include "text_common.cuh"

#define SOFTMAX_WARPS 8
#define SOFTMAX_MAX_BLOCKS 65535u

template <typename T>
static __global__ void __launch_bounds__(SOFTMAX_WARPS * TEXT_WARP)
    masked_softmax_kernel(T *scores,                        // (B * heads * T, T)
                          const int32_t *__restrict__ lengths, // (B)
                          int64_t rows, int heads, int t)
{
    int lane = threadIdx.x % TEXT_WARP;
    int64_t first = (int64_t)blockIdx.x * SOFTMAX_WARPS + threadIdx.x / TEXT_WARP;
    for (int64_t r = first; r < rows; r += (int64_t)gridDim.x * SOFTMAX_WARPS) {
        int b = (int)(r / ((int64_t)heads * t));
        int len = lengths[b] < 0 ? 0 : lengths[b] > t ? t : lengths[b];
        T *row = scores + (size_t)r * t; // (T)
        float mx = -INFINITY;
        for (int k = lane; k < len; k += TEXT_WARP)
            mx = fmaxf(mx, act_load(row, k));
        for (int offset = TEXT_WARP / 2; offset > 0; offset /= 2)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, offset));
        float sum = 0.0f;
        for (int k = lane; k < len; k += TEXT_WARP)
            sum += expf(act_load(row, k) - mx);
        for (int offset = TEXT_WARP / 2; offset > 0; offset /= 2)
            sum += __shfl_xor_sync(0xffffffffu, sum, offset);
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int k = lane; k < t; k += TEXT_WARP)
            act_store(row, k, k < len ? expf(act_load(row, k) - mx) * inv : 0.0f);
    }
}

extern "C" cudaError_t imsi_cuda_masked_softmax(void *scores, const int32_t *lengths, int f16, int b, int heads, int t,
                                                cudaStream_t s)
{
    int64_t rows = (int64_t)b * heads * t;
    if (rows <= 0 || t <= 0)
        return cudaSuccess;
    int64_t need = (rows + SOFTMAX_WARPS - 1) / SOFTMAX_WARPS;
    unsigned int blocks = need < (int64_t)SOFTMAX_MAX_BLOCKS ? (unsigned int)need : SOFTMAX_MAX_BLOCKS;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (f16)
        masked_softmax_kernel<<<blocks, SOFTMAX_WARPS * TEXT_WARP, 0, s>>>((uint16_t *)scores, lengths, rows, heads, t);
    else
        masked_softmax_kernel<<<blocks, SOFTMAX_WARPS * TEXT_WARP, 0, s>>>((float *)scores, lengths, rows, heads, t);
    return cudaGetLastError();
}
