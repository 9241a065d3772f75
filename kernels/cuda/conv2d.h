/* kernels/cuda/conv2d.h: the CUDA backend's convolutions through cuDNN (kernels/cuda/conv2d.c).
 *
 * Per shape (batch, sizes, filter, stride, padding, output width, precision),
 * a plan is built once and cached: tensor/filter/convolution descriptors, the
 * algorithm cuDNN measured fastest (cudnnFindConvolutionForwardAlgorithmEx)
 * and its workspace size. One workspace buffer, grown as plans need, serves
 * every convolution (all run on the backend's one stream).
 */
#ifndef IMS_CONV_CUDNN_H
#define IMS_CONV_CUDNN_H

#include "backend/backend.h"

#include <cuda_runtime_api.h>
#include <cudnn.h>

typedef struct ims_cudnn_convs ims_cudnn_convs;

/* The ims_op_conv2d contract (backend.h), shapes already checked. *cache is
 * created on first use. */
ims_status ims_cudnn_conv2d(ims_cudnn_convs **cache, cudnnHandle_t handle, cudaStream_t stream,
                            const ims_conv2d_params *p, const ims_tensor *x, const ims_tensor *w,
                            const ims_tensor *bias, ims_tensor *y, ims_error *err);

/* Releases the plans and the workspace (the stream must be idle). NULL is fine. */
void ims_cudnn_convs_free(ims_cudnn_convs *cache);

#endif /* IMS_CONV_CUDNN_H */
