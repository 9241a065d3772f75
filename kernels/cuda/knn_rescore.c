/* kernels/cuda/knn_rescore.c: the knn_rescore op on CUDA (knn_rescore.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/knn_tile.h"
#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_knn_rescore(imsi_cuda_ctx *cuda, const imsi_tensor *table, const imsi_tensor *queries,
                                    const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                                    int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err)
{
    int c = (int)cand->shape[1];
    if (c > KNN_RESCORE_MAX)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn rescore: %d candidates (at most %d on CUDA)", c,
                             KNN_RESCORE_MAX);
    IMS_CUDA_CHECK(err, imsi_cuda_knn_rescore(table->data, table->dtype == IMS_DTYPE_F16, queries->data, cand->data,
                                              cand_scores->data, margin->data, ids->data, scores->data, ok->data,
                                              (int)table->shape[0], (int)table->shape[1], (int)queries->shape[0], c,
                                              k, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
