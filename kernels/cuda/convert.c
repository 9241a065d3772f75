/* kernels/cuda/convert.c: the convert op on CUDA: a device copy between equal dtypes,
 * else the kernels of convert.cu. */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_convert(imsi_cuda_ctx *cuda, const imsi_tensor *src, imsi_tensor *dst, ims_error *err)
{
    size_t n = (size_t)imsi_tensor_numel(src);
    if (src->dtype == dst->dtype) {
        if (src->data != dst->data) {
            IMS_CUDA_CHECK(err, cudaMemcpyAsync(dst->data, src->data, imsi_tensor_nbytes(src),
                                                cudaMemcpyDeviceToDevice, cuda->stream));
        }
        return IMS_OK;
    }
    if (src->dtype == IMS_DTYPE_F32) {
        const float *x = src->data; // (n)
        uint16_t *y = dst->data;    // (n)
        IMS_CUDA_CHECK(err, imsi_cuda_convert_f32_to_f16(x, y, n, cuda->stream));
    } else {
        const uint16_t *x = src->data; // (n)
        float *y = dst->data;          // (n)
        IMS_CUDA_CHECK(err, imsi_cuda_convert_f16_to_f32(x, y, n, cuda->stream));
    }
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
