/* kernels/cuda/pool2d.c: the pool2d and global_avg_pool ops on CUDA (kernels:
 * pool2d.cu, global_avg_pool.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_pool2d(imsi_cuda_ctx *cuda, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                               ims_error *err)
{
    const void *xp = x->data; // (N, H, W, C)
    void *yp = y->data;       // (N, OH, OW, Ctot)
    IMS_CUDA_CHECK(err, imsi_cuda_pool2d_nhwc(xp, yp, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2],
                                              (int)x->shape[3], p->kind == IMS_POOL_MAX, p->k, p->stride, p->pad,
                                              p->count_include_pad, (int)y->shape[1], (int)y->shape[2], (int)y->shape[3],
                                              p->y_channel_offset, x->dtype == IMS_DTYPE_F16, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}

ims_status imsi_cuda_op_global_avg_pool(imsi_cuda_ctx *cuda, const imsi_tensor *x, imsi_tensor *y, ims_error *err)
{
    const void *xp = x->data; // (N, H, W, C)
    float *yp = y->data;      // (N, C)
    IMS_CUDA_CHECK(err, imsi_cuda_global_avg_pool_nhwc(xp, yp, (int)x->shape[0], (int)(x->shape[1] * x->shape[2]),
                                                       (int)x->shape[3], x->dtype == IMS_DTYPE_F16, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
