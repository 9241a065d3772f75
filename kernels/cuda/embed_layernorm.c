/* kernels/cuda/embed_layernorm.c: the embed_layernorm op on CUDA (kernel: embed_layernorm.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_embed_layernorm(imsi_cuda_ctx *cuda, const imsi_tensor *ids, const imsi_tensor *word,
                                        const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                        const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err)
{
    IMS_CUDA_CHECK(err, imsi_cuda_embed_layernorm(ids->data, word->data, pos->data, type->data, gamma->data, beta->data,
                                                  eps, y->data, y->dtype == IMS_DTYPE_F16, (int)ids->shape[0],
                                                  (int)ids->shape[1], (int)word->shape[1], (int)word->shape[0],
                                                  cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
