/* kernels/cuda/add_layernorm.c: the add_layernorm op on CUDA (kernel: add_layernorm.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_add_layernorm(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *bias,
                                      const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                      double eps, imsi_tensor *y, ims_error *err)
{
    IMS_CUDA_CHECK(err, imsi_cuda_add_layernorm(x->data, bias ? bias->data : NULL, residual->data, gamma->data,
                                                beta->data, eps, y->data, x->dtype == IMS_DTYPE_F16, (int)x->shape[0],
                                                (int)x->shape[1], cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
