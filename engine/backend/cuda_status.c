/* backend/cuda_status.c: library status numbers -> ims_status (cuda_status.h). */
#include "backend/cuda_status.h"

ims_status imsi_cuda_error_status(int e)
{
    if (e == 0)
        return IMS_OK;
    if (e == IMSI_CUDA_ERROR_MEMORY_ALLOCATION)
        return IMS_ERR_NOMEM;
    if (e == IMSI_CUDA_ERROR_NO_DEVICE || e == IMSI_CUDA_ERROR_INSUFFICIENT_DRIVER)
        return IMS_ERR_NO_DEVICE;
    return IMS_ERR_CUDA;
}

ims_status imsi_cublas_error_status(int s)
{
    if (s == 0)
        return IMS_OK;
    return s == IMSI_CUBLAS_STATUS_ALLOC_FAILED ? IMS_ERR_NOMEM : IMS_ERR_CUDA;
}

ims_status imsi_cudnn_error_status(int s)
{
    if (s == 0)
        return IMS_OK;
    /* cuDNN 9 splits allocation failures into host and device ones (the old
     * CUDNN_STATUS_ALLOC_FAILED is now the host one only): both are memory */
    if (s == IMSI_CUDNN_STATUS_HOST_ALLOCATION_FAILED || s == IMSI_CUDNN_STATUS_DEVICE_ALLOCATION_FAILED)
        return IMS_ERR_NOMEM;
    return IMS_ERR_CUDA;
}
