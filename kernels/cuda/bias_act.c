/* kernels/cuda/bias_act.c: the bias_act op on CUDA (kernel: bias_act.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_bias_act(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                                 imsi_tensor *y, ims_error *err)
{
    IMS_CUDA_CHECK(err, imsi_cuda_bias_act(x->data, bias->data, y->data, x->dtype == IMS_DTYPE_F16, act == IMS_ACT_GELU,
                                           (int)x->shape[0], (int)x->shape[1], cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
