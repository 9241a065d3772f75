/* kernels/cuda/l2_normalize.c: the l2_normalize_rows op on CUDA (kernel: l2_normalize.cu). */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_l2_normalize_rows(imsi_cuda_ctx *cuda, const imsi_tensor *x, imsi_tensor *y, imsi_tensor *norms,
                                          ims_error *err)
{
    int n = (int)x->shape[0], d = (int)x->shape[1]; /* backend.c checked the int range */
    int f16 = y->dtype == IMS_DTYPE_F16;
    const float *xp = x->data;                          // (n, d)
    float *y_f32 = f16 ? NULL : (float *)y->data;       // (n, d) or NULL
    uint16_t *y_f16 = f16 ? (uint16_t *)y->data : NULL; // (n, d) or NULL
    float *np = norms->data;                            // (n)
    IMS_CUDA_CHECK(err, imsi_cuda_l2_normalize_rows(xp, y_f32, y_f16, np, n, d, cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    return IMS_OK;
}
