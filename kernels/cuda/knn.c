/* kernels/cuda/knn.c: the knn_select op on CUDA: the score tile loop around the
 * kernels of knn_scores.cu and knn_select.cu (and cuBLAS for the GEMM paths). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/knn_tile.h"
#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

/* Exact top-k over the table, tile by tile (kernels/cuda/knn_tile.h: a (B, k + T) f32 tile
 * whose first k columns carry the running best): scores of T rows into the
 * tile's columns k.., by the streaming kernel (knn_scores.cu; small batches) or
 * by cuBLAS sgemm (large batches; f16 rows are first converted to an f32 tile
 * copy, so the scores stay exact fp32 dot products of the stored values, as on
 * the CPU), then the radix selection (knn_select.cu) merges them with the
 * running best (in two stages, per-block candidate lists then a merge, when
 * k is small). The B x N score matrix never exists. */
ims_status imsi_cuda_op_knn_select(imsi_cuda_ctx *cuda, const imsi_tensor *table, const imsi_tensor *queries, int k,
                                   int path, imsi_tensor *ids, imsi_tensor *scores, ims_error *err)
{
    ims_status status;
    int n = (int)table->shape[0], d = (int)table->shape[1], b = (int)queries->shape[0]; /* int range checked */
    int f16 = table->dtype == IMS_DTYPE_F16;
    int kk = k < n ? k : n;
    if (b == 0 || n == 0)
        return IMS_OK;
    path = imsi_knn_resolve_path(path, b, f16);
    imsi_knn_layout l;
    if (!imsi_knn_layout_make(b, k, n, d, f16, path, &l))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn: scratch for %d queries, k %d over (%d, %d) overflows", b, k,
                             n, d);
    int64_t t = l.tile_rows;
    int ld = (int)l.ld;
    char *ws = NULL;
    if ((status = imsi_cuda_scratch(cuda, l.total, "knn", (void **)&ws, err)))
        return status;
    float *tile = (float *)(ws + l.tile);                                  // (b, ld)
    int32_t *cand = (int32_t *)(ws + l.cand);                              // (b, k)
    uint64_t *tmp = (uint64_t *)(ws + l.tmp);                              // (b, k)
    uint64_t *seg = l.seg_bytes ? (uint64_t *)(ws + l.seg) : NULL;         // (b, segments, k)
    float *rows32 = l.rows_bytes ? (float *)(ws + l.rows) : NULL;          // (t, d) (GEMM, f16 rows)
    uint16_t *q16 = l.rows_bytes ? (uint16_t *)(ws + l.rows) : NULL;       // (b, d) (GEMM_F16)
    const float *qp = queries->data; // (b, d)
    const float alpha = 1.0f, beta = 0.0f;
    if (path == IMS_KNN_PATH_GEMM_F16) {
        IMS_CUDA_CHECK(err, imsi_cuda_convert_f32_to_f16(qp, q16, (size_t)b * d, cuda->stream));
        IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    }
    int kprev = 0;
    for (int r0 = 0; r0 < n; r0 += (int)t) {
        int cnt = n - r0 < t ? n - r0 : (int)t;
        const char *rows = (const char *)table->data + (size_t)r0 * d * (f16 ? 2 : 4); // (cnt, d)
        if (path == IMS_KNN_PATH_GEMM_F16) {
            /* As below in fp16 with fp32 accumulation and output (tensor cores):
             * each product of two halves is exact in fp32. */
            IMS_CUBLAS_CHECK(err, cublasGemmEx(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, cnt, b, d, &alpha, rows,
                                               CUDA_R_16F, d, q16, CUDA_R_16F, d, &beta, tile + k, CUDA_R_32F, ld,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        } else if (path == IMS_KNN_PATH_GEMM) {
            const float *r32 = (const float *)rows;
            if (f16) {
                IMS_CUDA_CHECK(err, imsi_cuda_convert_f16_to_f32((const uint16_t *)rows, rows32, (size_t)cnt * d,
                                                                 cuda->stream));
                IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
                r32 = rows32;
            }
            /* Row-major tile[q][k + j] = q . row_j is the column-major (cnt, b)
             * matrix rows (d, cnt)^T . queries (d, b), ldc = ld. */
            IMS_CUBLAS_CHECK(err, cublasSgemm(cuda->cublas, CUBLAS_OP_T, CUBLAS_OP_N, cnt, b, d, &alpha, r32, d, qp, d,
                                              &beta, tile + k, ld));
        } else {
            IMS_CUDA_CHECK(err, imsi_cuda_knn_scores(rows, f16, qp, tile + k, cnt, d, b, ld, cuda->stream));
            IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
        }
        IMS_CUDA_CHECK(err, imsi_cuda_knn_select(tile, cand, tmp, seg, b, ld, kprev, k, cnt, r0, k, cuda->stream));
        IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
        kprev = kprev + cnt < k ? kprev + cnt : k;
    }
    /* The first kk columns of the tile and of the candidate lists. */
    IMS_CUDA_CHECK(err, cudaMemcpy2DAsync(scores->data, (size_t)kk * 4, tile, (size_t)ld * 4, (size_t)kk * 4, b,
                                          cudaMemcpyDeviceToDevice, cuda->stream));
    IMS_CUDA_CHECK(err, cudaMemcpy2DAsync(ids->data, (size_t)kk * 4, cand, (size_t)k * 4, (size_t)kk * 4, b,
                                          cudaMemcpyDeviceToDevice, cuda->stream));
    return IMS_OK;
}
