/* knn_keys.cuh: the k-NN kernels' unique 64-bit ordering keys (knn_select.cu,
 * knn_rescore.cu): (score key << 32) | ~row, where the score key is the
 * float's bits made order-preserving (NaN as -inf, -0 as +0) and ~row makes a
 * lower row the larger key among equal scores. "Best k" is "the k largest
 * keys", whatever order elements come in; 0 is below every real key. */
#ifndef IMS_KNN_KEYS_CUH
#define IMS_KNN_KEYS_CUH

#include <stdint.h>

static __device__ __forceinline__ uint32_t knn_key(float f)
{
    if (isnan(f))
        f = -INFINITY;
    if (f == 0.0f)
        f = 0.0f; /* -0 and +0 are equal scores */
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static __device__ __forceinline__ uint64_t knn_ckey(float score, int32_t row)
{
    return ((uint64_t)knn_key(score) << 32) | (uint32_t)~(uint32_t)row;
}

static __device__ __forceinline__ float knn_ckey_score(uint64_t c)
{
    uint32_t k = (uint32_t)(c >> 32);
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

static __device__ __forceinline__ int32_t knn_ckey_row(uint64_t c) { return (int32_t)~(uint32_t)c; }

/* keys[0 .. n) (n a power of two) into descending order, in place: the
 * bitonic network, one barrier per step. */
static __device__ void knn_bitonic_desc(uint64_t *keys, int n)
{
    for (int size = 2; size <= n; size <<= 1)
        for (int stride = size / 2; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < n; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    uint64_t a = keys[i], z = keys[j];
                    bool desc = (i & size) == 0;
                    if (desc ? a < z : a > z) {
                        keys[i] = z;
                        keys[j] = a;
                    }
                }
            }
            __syncthreads();
        }
}

#endif /* IMS_KNN_KEYS_CUH */
