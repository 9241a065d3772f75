/* kernels/cuda/linear.c: the linear ops on CUDA: cuBLAS GEMMs (a bias is broadcast
 * into y first by broadcast_rows.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

/* y (M, N) = x (M, K) . w (N, K)^T + bias (N). cuBLAS is column-major, and a
 * row-major (R, C) matrix is a column-major (C, R) one, so the product is
 * y^T (N, M) = w (N, K) . x^T (K, M): w is the column-major (K, N) matrix,
 * transposed (CUBLAS_OP_T, lda K); x is the column-major (K, M) matrix as is
 * (CUBLAS_OP_N, ldb K); y is column-major (N, M), ldc N. With a bias, y is
 * first filled with it and beta = 1 adds the product; with beta = 0, cuBLAS
 * does not read y (so its old contents, even NaN, do not matter). */
ims_status imsi_cuda_op_linear(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *w, const imsi_tensor *bias,
                               imsi_tensor *y, ims_error *err)
{
    int m = (int)x->shape[0], k = (int)x->shape[1], n = (int)w->shape[0]; /* int range checked */
    const float *xp = x->data;                       // (M, K)
    const float *wp = w->data;                       // (N, K)
    const float *bp = bias ? bias->data : NULL;      // (N) or NULL
    float *yp = y->data;                             // (M, N)
    const float alpha = 1.0f;
    float beta = 0.0f;
    if (bp) {
        IMS_CUDA_CHECK(err, imsi_cuda_broadcast_rows(bp, yp, m, n, cuda->stream));
        IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
        beta = 1.0f;
    }
    IMS_CUBLAS_CHECK(err, cublasSgemm(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, wp, k, xp, k, &beta,
                                      yp, n));
    return IMS_OK;
}

/* As imsi_cuda_op_linear, with f16 operands and result, fp32 accumulation. */
ims_status imsi_cuda_op_linear_f16(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *w, imsi_tensor *y,
                                   ims_error *err)
{
    int m = (int)x->shape[0], k = (int)x->shape[1], n = (int)w->shape[0];
    const float one = 1.0f, zero = 0.0f;
    IMS_CUBLAS_CHECK(err, cublasGemmEx(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w->data, CUDA_R_16F, k,
                                       x->data, CUDA_R_16F, k, &zero, y->data, CUDA_R_16F, n, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    return IMS_OK;
}
