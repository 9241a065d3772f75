/* kernels/cuda/input_u8.c: the input_u8 op on CUDA (kernel: input_u8.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_input_u8(imsi_cuda_ctx *cuda, const imsi_tensor *x, const float scale[3], const float shift[3],
                                 imsi_tensor *y, ims_error *err)
{
    const uint8_t *xp = x->data; // (N, H, W, 3)
    void *yp = y->data;          // (N, H, W, 3)
    size_t pixels = (size_t)(x->shape[0] * x->shape[1] * x->shape[2]);
    IMS_CUDA_CHECK(err, imsi_cuda_input_u8(xp, yp, pixels, scale, shift, y->dtype == IMS_DTYPE_F16, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
