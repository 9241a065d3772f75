/* cuda_check.h: one family of checks for CUDA runtime, cuBLAS and cuDNN calls.
 *
 * Each records the failing statement's text, the library's own error name and
 * description, and file:line into the caller's ims_error, then returns from the
 * enclosing function (the *_CHECK forms) or evaluates to the status (the *_CALL
 * forms, for code that must clean up):
 *
 *     IMS_CUDA_CHECK(err, cudaMalloc(&p, n));
 *     if (IMS_CUBLAS_CALL(err, cublasSgemm(...))) goto fail;
 *     my_kernel<<<g, b, 0, s>>>(...); IMS_CUDA_CHECK_LAUNCH(err, s);
 *
 * IMS_CUDA_CHECK_LAUNCH checks the launch; with IMS_CUDA_SYNC_DEBUG it also
 * synchronizes the stream so that a faulting kernel is named where it ran.
 */
#ifndef IMS_CUDA_CHECK_H
#define IMS_CUDA_CHECK_H

#include "backend/cuda_status.h"
#include "core/error.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

static inline ims_status imsi_cuda_status(ims_error *err, cudaError_t e, const char *stmt, const char *file,
                                          int line)
{
    if (e == cudaSuccess)
        return IMS_OK;
    (void)cudaGetLastError(); /* a reported failure must not resurface at the next launch check */
    return ims_error_set(err, imsi_cuda_error_status((int)e), "%s failed: %s (%s) at %s:%d", stmt, cudaGetErrorName(e),
                         cudaGetErrorString(e), file, line);
}

static inline ims_status imsi_cublas_status(ims_error *err, cublasStatus_t s, const char *stmt, const char *file,
                                            int line)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return IMS_OK;
    return ims_error_set(err, imsi_cublas_error_status((int)s), "%s failed: %s (%s) at %s:%d", stmt,
                         cublasGetStatusName(s), cublasGetStatusString(s), file, line);
}

static inline ims_status imsi_cudnn_status(ims_error *err, cudnnStatus_t s, const char *stmt, const char *file,
                                           int line)
{
    if (s == CUDNN_STATUS_SUCCESS)
        return IMS_OK;
    /* a failed cuDNN call may leave a CUDA error behind (a kernel it launched) */
    (void)cudaGetLastError();
    return ims_error_set(err, imsi_cudnn_error_status((int)s), "%s failed: %s (%d) at %s:%d", stmt,
                         cudnnGetErrorString(s), (int)s, file, line);
}

#define IMS_CUDA_CALL(err, stmt) imsi_cuda_status((err), (stmt), #stmt, __FILE__, __LINE__)
#define IMS_CUBLAS_CALL(err, stmt) imsi_cublas_status((err), (stmt), #stmt, __FILE__, __LINE__)
#define IMS_CUDNN_CALL(err, stmt) imsi_cudnn_status((err), (stmt), #stmt, __FILE__, __LINE__)

#define IMS_CHECK_RETURN_(call)                                                                              \
    do {                                                                                                     \
        ims_status imsi_st_ = (call);                                                                         \
        if (imsi_st_ != IMS_OK)                                                                               \
            return imsi_st_;                                                                                  \
    } while (0)

#define IMS_CUDA_CHECK(err, stmt) IMS_CHECK_RETURN_(IMS_CUDA_CALL(err, stmt))
#define IMS_CUBLAS_CHECK(err, stmt) IMS_CHECK_RETURN_(IMS_CUBLAS_CALL(err, stmt))
#define IMS_CUDNN_CHECK(err, stmt) IMS_CHECK_RETURN_(IMS_CUDNN_CALL(err, stmt))

#ifdef IMS_CUDA_SYNC_DEBUG
#define IMS_CUDA_LAUNCH_SYNC_(err, stream) IMS_CUDA_CHECK(err, cudaStreamSynchronize(stream))
#else
#define IMS_CUDA_LAUNCH_SYNC_(err, stream) ((void)0)
#endif

/* After a kernel launch: the launch error, then (debug builds) the kernel's own. */
#define IMS_CUDA_CHECK_LAUNCH(err, stream)                                                                   \
    do {                                                                                                     \
        IMS_CUDA_CHECK(err, cudaGetLastError());                                                             \
        IMS_CUDA_LAUNCH_SYNC_(err, stream);                                                                  \
    } while (0)

#endif /* IMS_CUDA_CHECK_H */
