/* kernels/cuda/cuda_ctx.c: the CUDA ops' shared scratch and the context's release. */
#include "kernels/cuda/cuda_ctx.h"

#include "backend/cuda_check.h"
#include "core/error.h"

/* The scratch, grown (never shrunk) to at least nbytes. */
ims_status imsi_cuda_scratch(imsi_cuda_ctx *cuda, size_t nbytes, const char *what, void **out, ims_error *err)
{
    if (cuda->scratch_bytes < nbytes) {
        if (imsi_cuda_capturing(cuda))
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: the scratch must grow to %zu bytes, which it cannot "
                                 "during graph capture", what, nbytes);
        if (cuda->scratch) {
            IMS_CUDA_CHECK(err, cudaStreamSynchronize(cuda->stream));
            IMS_CUDA_CHECK(err, cudaFree(cuda->scratch));
            cuda->scratch = NULL;
            cuda->scratch_bytes = 0;
            cuda->generation++; /* graphs that used the old buffer are stale */
        }
        void *p = NULL;
        ims_status status = IMS_CUDA_CALL(err, cudaMalloc(&p, nbytes));
        if (status)
            return imsi_error_prefix(err, status, "%s workspace of %zu bytes", what, nbytes);
        cuda->scratch = p;
        cuda->scratch_bytes = nbytes;
    }
    *out = cuda->scratch;
    return IMS_OK;
}

int imsi_cuda_capturing(const imsi_cuda_ctx *cuda)
{
    enum cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(cuda->stream, &status) != cudaSuccess) {
        (void)cudaGetLastError();
        return 1;
    }
    return status != cudaStreamCaptureStatusNone;
}

void imsi_cuda_ctx_release(imsi_cuda_ctx *cuda)
{
    /* release cannot report failures; a failed call leaves nothing to undo.
     * The convolution plans are conv2d.c's (freed by the backend first). */
    if (cuda->scratch && cudaFree(cuda->scratch) != cudaSuccess)
        (void)cudaGetLastError();
    cuda->scratch = NULL;
    cuda->scratch_bytes = 0;
}
