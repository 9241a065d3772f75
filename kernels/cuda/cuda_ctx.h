/* kernels/cuda/cuda_ctx.h: what a CUDA op needs to run.
 *
 * engine/backend/cuda.c owns one context per backend: it creates the stream
 * and the library handles bound to it, and makes the backend's GPU current
 * before it calls an op entry (kernels/cuda/ops_cuda.h). The ops enqueue all
 * their work on `stream`, so one scratch buffer serves every op: an op that
 * grows it first waits for the stream (no earlier op may still use it).
 */
#ifndef IMS_CUDA_CTX_H
#define IMS_CUDA_CTX_H

#include "imgsearch.h"
#include "kernels/cuda/cuda_hooks.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <stddef.h>

typedef struct imsi_cudnn_convs imsi_cudnn_convs; /* kernels/cuda/conv2d.c */

typedef struct imsi_cuda_ctx {
    cudaStream_t stream;     /* non-blocking; every op's work goes here */
    cublasHandle_t cublas;   /* bound to stream */
    cudnnHandle_t cudnn;     /* bound to stream */
    imsi_cudnn_convs *convs; /* conv2d plans per shape; NULL until the first conv2d */
    void *scratch;           /* device scratch, grown (never shrunk) by imsi_cuda_scratch */
    size_t scratch_bytes;
    unsigned long generation; /* + 1 whenever the scratch or the cuDNN workspace moves: a CUDA
                               * graph captured before then would replay freed addresses */
    imsi_cuda_hooks hooks;   /* the GPU tests' switches and counters */
} imsi_cuda_ctx;

/* The scratch, grown to at least nbytes; `what` names the op in a failure.
 * It cannot grow during graph capture (IMS_ERR_UNSUPPORTED): run the same
 * shapes once before capturing them. */
ims_status imsi_cuda_scratch(imsi_cuda_ctx *cuda, size_t nbytes, const char *what, void **out, ims_error *err);

/* Whether the stream is capturing a graph (then no synchronization, no
 * allocation that frees, no cuDNN search may run). A failed query counts as
 * capturing: the cautious answer. */
int imsi_cuda_capturing(const imsi_cuda_ctx *cuda);

/* Frees the scratch (the stream must be idle); the stream, handles and the
 * convolution plans (imsi_cudnn_convs_free) belong to the caller. */
void imsi_cuda_ctx_release(imsi_cuda_ctx *cuda);

#endif /* IMS_CUDA_CTX_H */
