/* kernels/cuda/pool_normalize.c: the pool_normalize op on CUDA (kernel: pool_normalize.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_pool_normalize(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *lengths,
                                       imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err)
{
    IMS_CUDA_CHECK(err, imsi_cuda_pool_normalize(x->data, lengths->data, y->data, x->dtype == IMS_DTYPE_F16,
                                                 pooling == IMS_POOLING_CLS, normalize, (int)x->shape[0],
                                                 (int)x->shape[1], (int)x->shape[2], cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
