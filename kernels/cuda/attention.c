/* kernels/cuda/attention.c: the attention op on CUDA: cuBLAS strided-batched GEMMs
 * around our masked softmax (masked_softmax.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

#include <math.h>

/* Attention with cuBLAS: per head, over the batch (strided by a sequence):
 *   S (T, T) = Q (T, D) . K (T, D)^T / sqrt(D)   into scores[b][h]
 *   P = masked softmax of S (our kernel, all heads at once, in place)
 *   ctx (T, D) = P (T, T) . V (T, D)             into ctx[b][:, h D : (h + 1) D]
 * Q, K, V are column blocks of qkv (B, T, 3H) with row stride 3H. In cuBLAS's
 * column-major terms (as imsi_cuda_op_linear): S^T = K . Q^T is gemm(T, N) with
 * m = n = T, k = D; ctx^T = V^T . P^T is gemm(N, N) with m = D, n = T, k = T.
 * fp32 accumulation in both precisions (CUBLAS_COMPUTE_32F; no TF32). */
ims_status imsi_cuda_op_attention(imsi_cuda_ctx *cuda, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                                  imsi_tensor *scores, imsi_tensor *ctx, ims_error *err)
{
    int b = (int)qkv->shape[0], t = (int)qkv->shape[1], h = (int)(qkv->shape[2] / 3), d = h / heads;
    int f16 = qkv->dtype == IMS_DTYPE_F16;
    cudaDataType_t type = f16 ? CUDA_R_16F : CUDA_R_32F;
    size_t esize = f16 ? 2 : 4;
    const char *base = qkv->data; // (B, T, 3H)
    char *sp = scores->data;      // (B, heads, T, T)
    char *cp = ctx->data;         // (B, T, H)
    const float scale = (float)(1.0 / sqrt((double)d)), one = 1.0f, zero = 0.0f;
    long long qkv_stride = (long long)t * 3 * h, s_stride = (long long)heads * t * t, c_stride = (long long)t * h;
    for (int hi = 0; hi < heads; hi++) {
        const void *q = base + (size_t)hi * d * esize, *k = base + (size_t)(h + hi * d) * esize;
        void *s = sp + (size_t)hi * t * t * esize;
        IMS_CUBLAS_CHECK(err, cublasGemmStridedBatchedEx(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, t, t, d, &scale, k,
                                                         type, 3 * h, qkv_stride, q, type, 3 * h, qkv_stride, &zero,
                                                         s, type, t, s_stride, b, CUBLAS_COMPUTE_32F,
                                                         CUBLAS_GEMM_DEFAULT));
    }
    IMS_CUDA_CHECK(err, imsi_cuda_masked_softmax(scores->data, lengths->data, f16, b, heads, t, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    for (int hi = 0; hi < heads; hi++) {
        const void *v = base + (size_t)(2 * h + hi * d) * esize;
        const void *p = sp + (size_t)hi * t * t * esize;
        void *c = cp + (size_t)hi * d * esize;
        IMS_CUBLAS_CHECK(err, cublasGemmStridedBatchedEx(cuda->cublas, CUBLAS_OP_N, CUBLAS_OP_N, d, t, t, &one, v, type,
                                                         3 * h, qkv_stride, p, type, t, s_stride, &zero, c, type, h,
                                                         c_stride, b, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    return IMS_OK;
}
