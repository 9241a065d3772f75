/* kernels/cuda/linear.c: the linear op (engine/backend/backend.h) on CUDA:
 * one cuBLAS GEMM, the dtype from the tensors.
 *
 * cuBLAS is column-major, and a row-major (R, C) matrix is a column-major
 * (C, R) one, so y (M, N) = x (M, K) . w (N, K)^T is y^T (N, M) = w (N, K) .
 * x^T (K, M): w is the column-major (K, N) matrix, transposed (CUBLAS_OP_T,
 * lda K); x is the column-major (K, M) matrix as is (CUBLAS_OP_N, ldb K); y
 * is column-major (N, M), ldc N. With a bias, the GEMM's output is first
 * filled with it (broadcast_rows.cu) and beta = 1 adds the product; with
 * beta = 0, cuBLAS does not read the output (so its old contents, even NaN,
 * do not matter).
 *
 * f32: cublasSgemm, strict fp32 (the handle's math mode excludes TF32).
 * f16: cublasGemmEx on halves with CUBLAS_COMPUTE_32F. Without a bias it
 * writes y in f16 directly (one rounding of the fp32 sum). With one, the
 * contract's single rounding after the f32 bias needs an f32 output: the
 * GEMM writes an (M, N) f32 scratch holding the bias, which is then rounded
 * to y. The models never ask for f16 + bias (the text encoder adds its
 * biases in the next op), so that extra pass costs nothing in practice.
 */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_linear(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *w,
                               const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    int m = (int)x->shape[0], k = (int)x->shape[1], n = (int)w->shape[0]; /* int range checked */
    const float *bp = bias ? bias->data : NULL;      // (N) or NULL
    const float alpha = 1.0f;
    float beta = 0.0f;
    if (x->dtype == IMS_DTYPE_F32) {
        const float *xp = x->data; // (M, K)
        const float *wp = w->data; // (N, K)
        float *yp = y->data;       // (M, N)
        if (bp) {
            IMS_CUDA_CHECK(err, imsi_cuda_broadcast_rows(bp, yp, m, n, cuda->stream));
            IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
            beta = 1.0f;
        }
        IMS_CUBLAS_CHECK(err, cublasSgemm(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, wp, k, xp, k,
                                          &beta, yp, n));
        return IMS_OK;
    }
    const uint16_t *xp = x->data; // (M, K) f16
    const uint16_t *wp = w->data; // (N, K) f16
    uint16_t *yp = y->data;       // (M, N) f16
    if (!bp) {
        IMS_CUBLAS_CHECK(err, cublasGemmEx(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, wp, CUDA_R_16F,
                                           k, xp, CUDA_R_16F, k, &beta, yp, CUDA_R_16F, n, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT));
        return IMS_OK;
    }
    float *acc = NULL; // (M, N) f32: bias + x . w^T before the one rounding
    ims_status status = imsi_cuda_scratch(cuda, (size_t)m * n * sizeof(float), "linear (f16 with a bias)",
                                          (void **)&acc, err);
    if (status)
        return status;
    IMS_CUDA_CHECK(err, imsi_cuda_broadcast_rows(bp, acc, m, n, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    beta = 1.0f;
    IMS_CUBLAS_CHECK(err, cublasGemmEx(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, wp, CUDA_R_16F, k,
                                       xp, CUDA_R_16F, k, &beta, acc, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    IMS_CUDA_CHECK(err, imsi_cuda_convert_f32_to_f16(acc, yp, (size_t)m * n, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
