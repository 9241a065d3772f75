/* embed_layernorm.cu: the embed_layernorm op's kernel (contract:
 * engine/backend/backend.h; CPU reference: kernels/cpu/embed_layernorm.c).
 *
 * One block per token (grid-stride, grid capped), threads striding over H.
 * Three passes over the row (sum, squared deviations, write), each recomputing
 * word + pos + type in double from L1/L2-resident rows; statistics in double as
 * on the CPU, so results agree to an f32 rounding. A token whose id is outside
 * the vocabulary is not read: its row is left unwritten and its flat index
 * goes into *bad (atomicMin, so the first bad token wins), which the op reads
 * back and reports (kernels/cuda/embed_layernorm.c).
 */
#include "launch.h"
#include "text_common.cuh"

#define EMB_MAX_BLOCKS 65535u

template <typename T>
static __global__ void __launch_bounds__(TEXT_MAX_THREADS)
    embed_layernorm_kernel(const int32_t *__restrict__ ids, // (B, T)
                           const float *__restrict__ word,  // (V, H)
                           const float *__restrict__ pos,   // (P, H)
                           const float *__restrict__ type0, // (H)
                           const float *__restrict__ gamma, // (H)
                           const float *__restrict__ beta,  // (H)
                           double eps, T *__restrict__ y,   // (B, T, H)
                           int64_t tokens, int t, int h, int vocab,
                           unsigned int *__restrict__ bad)  // (1): the first bad token's index
{
    __shared__ double sums[TEXT_MAX_THREADS / TEXT_WARP];
    for (int64_t r = blockIdx.x; r < tokens; r += gridDim.x) {
        int id = ids[r];
        if (id < 0 || id >= vocab) { /* the whole block skips the row: no barrier diverges */
            if (threadIdx.x == 0)
                atomicMin(bad, (unsigned int)r); /* tokens <= INT_MAX (checked) */
            continue;
        }
        const float *we = word + (size_t)id * h;      // (H)
        const float *pe = pos + (size_t)(r % t) * h;  // (H)
        double s = 0.0;
        for (int i = threadIdx.x; i < h; i += blockDim.x)
            s += (double)we[i] + (double)pe[i] + (double)type0[i];
        double mean = block_sum_double(s, sums) / h;
        double v = 0.0;
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double d = (double)we[i] + (double)pe[i] + (double)type0[i] - mean;
            v += d * d;
        }
        double inv = 1.0 / sqrt(block_sum_double(v, sums) / h + eps);
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double d = (double)we[i] + (double)pe[i] + (double)type0[i] - mean;
            act_store(y, (size_t)r * h + i, (float)(d * inv * gamma[i] + beta[i]));
        }
    }
}

extern "C" cudaError_t imsi_cuda_embed_layernorm(const int32_t *ids, const float *word, const float *pos,
                                                 const float *type0, const float *gamma, const float *beta, double eps,
                                                 void *y, int y_f16, int b, int t, int h, int vocab,
                                                 unsigned int *bad, cudaStream_t s)
{
    int64_t tokens = (int64_t)b * t;
    if (tokens <= 0 || h <= 0)
        return cudaSuccess;
    unsigned int threads = text_row_threads(h);
    unsigned int blocks = tokens < (int64_t)EMB_MAX_BLOCKS ? (unsigned int)tokens : EMB_MAX_BLOCKS;
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (y_f16)
        embed_layernorm_kernel<<<blocks, threads, 0, s>>>(ids, word, pos, type0, gamma, beta, eps, (uint16_t *)y,
                                                          tokens, t, h, vocab, bad);
    else
        embed_layernorm_kernel<<<blocks, threads, 0, s>>>(ids, word, pos, type0, gamma, beta, eps, (float *)y,
                                                          tokens, t, h, vocab, bad);
    return cudaGetLastError();
}
