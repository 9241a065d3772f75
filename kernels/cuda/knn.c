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
    if (path == IMS_KNN_PATH_AUTO)
        path = b <= 16 ? IMS_KNN_PATH_STREAM : IMS_KNN_PATH_GEMM;
    if (path == IMS_KNN_PATH_GEMM_F16 && !f16)
        path = IMS_KNN_PATH_GEMM;
    /* Only the exact GEMM path over f16 rows needs an f32 copy of a tile's rows;
     * elsewhere the tile may be longer (B = 1: up to 64M rows, one pass). */
    int64_t t = imsi_knn_tile_rows(b, k, n, (path == IMS_KNN_PATH_GEMM && f16) ? d : 0);
    int ld = k + (int)t;
    size_t tile_bytes = (size_t)b * ld * 4, cand_bytes = (size_t)b * k * 4, tmp_bytes = (size_t)b * k * 8;
    size_t seg_bytes = imsi_cuda_knn_select_scratch_bytes(b, k, (int)t); /* the largest tile has the most segments */
    size_t rows32_bytes = (path == IMS_KNN_PATH_GEMM && f16) ? (size_t)t * d * 4
                          : path == IMS_KNN_PATH_GEMM_F16 ? (size_t)b * d * 2 /* the f16 queries */
                                                          : 0;
    /* Each part starts at a multiple of 16 bytes. */
    size_t off_cand = (tile_bytes + 15) / 16 * 16, off_tmp = off_cand + (cand_bytes + 15) / 16 * 16;
    size_t off_seg = off_tmp + tmp_bytes, off_rows = off_seg + (seg_bytes + 15) / 16 * 16;
    char *ws = NULL;
    if ((status = imsi_cuda_scratch(cuda, off_rows + rows32_bytes + 16, "knn", (void **)&ws, err)))
        return status;
    float *tile = (float *)ws;                                           // (b, ld)
    int32_t *cand = (int32_t *)(ws + off_cand);                          // (b, k)
    uint64_t *tmp = (uint64_t *)(ws + off_tmp);                          // (b, k)
    uint64_t *seg = seg_bytes ? (uint64_t *)(ws + off_seg) : NULL;       // (b, segments, k)
    float *rows32 = rows32_bytes ? (float *)(ws + off_rows) : NULL;      // (t, d) (GEMM, f16 rows)
    uint16_t *q16 = rows32_bytes ? (uint16_t *)(ws + off_rows) : NULL;   // (b, d) (GEMM_F16)
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
