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

typedef struct imsi_cudnn_convs imsi_cudnn_convs;

/* The imsi_op_conv2d contract (backend.h), shapes already checked. *cache is
 * created on first use. */
ims_status imsi_cudnn_conv2d(imsi_cudnn_convs **cache, cudnnHandle_t handle, cudaStream_t stream,
                             const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                             const imsi_tensor *bias, imsi_tensor *y, ims_error *err);

/* Releases the plans and the workspace (the stream must be idle). NULL is fine. */
void imsi_cudnn_convs_free(imsi_cudnn_convs *cache);

#endif /* IMS_CONV_CUDNN_H */
