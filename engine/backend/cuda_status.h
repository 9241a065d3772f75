/* backend/cuda_status.h: the ims_status of a failed CUDA runtime, cuBLAS or
 * cuDNN call, from the library's own status number.
 *
 * Plain C, so that every build has it and the unit tests check it without the
 * CUDA headers; cuda_check.h calls it, and backend/cuda.c asserts that the
 * numbers below agree with the headers it was built with.
 */
#ifndef IMS_CUDA_STATUS_H
#define IMS_CUDA_STATUS_H

#include "imgsearch.h"

/* The numbers these functions look for (cudaError_t, cublasStatus_t, cudnnStatus_t). */
#define IMSI_CUDA_ERROR_MEMORY_ALLOCATION 2
#define IMSI_CUDA_ERROR_INSUFFICIENT_DRIVER 35
#define IMSI_CUDA_ERROR_NO_DEVICE 100
#define IMSI_CUBLAS_STATUS_ALLOC_FAILED 3
#define IMSI_CUDNN_STATUS_HOST_ALLOCATION_FAILED 4003   /* cuDNN 9: ..._INTERNAL_ERROR_HOST_ALLOCATION_FAILED */
#define IMSI_CUDNN_STATUS_DEVICE_ALLOCATION_FAILED 4004 /* cuDNN 9: ..._INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED */

/* Out of memory (host or device) -> IMS_ERR_NOMEM; no device or driver ->
 * IMS_ERR_NO_DEVICE; anything else -> IMS_ERR_CUDA. Success is IMS_OK. */
ims_status imsi_cuda_error_status(int cuda_error);
ims_status imsi_cublas_error_status(int cublas_status);
ims_status imsi_cudnn_error_status(int cudnn_status);

#endif /* IMS_CUDA_STATUS_H */
