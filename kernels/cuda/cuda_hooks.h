/* kernels/cuda/cuda_hooks.h: switches and counters of a CUDA backend, for the
 * GPU tests (plain C: the tests see neither cuDNN nor cuBLAS headers). All 0
 * in normal use; the ops read the switches and count what they did.
 */
#ifndef IMS_CUDA_HOOKS_H
#define IMS_CUDA_HOOKS_H

#include "imgsearch.h"

typedef struct imsi_cuda_hooks {
    int conv_force_fallback; /* new conv2d plans skip cuDNN's fused call */
    int fail_in_capture;     /* conv2d fails while the stream is capturing */
    int captures;            /* graph captures begun on this backend */
    int graph_launches;      /* graphs replayed */
    long conv_searches;      /* conv2d plans searched (each a cuDNN timed search) */
    long conv_fallbacks;     /* conv2d calls run on the fallback path */
    long conv_z_reads;       /* fused candidates refused: their output depended on the old y */
} imsi_cuda_hooks;

/* A CUDA backend's hooks; NULL for any other backend (engine/backend/cuda.c). */
imsi_cuda_hooks *imsi_backend_cuda_hooks(ims_backend *be);

#endif /* IMS_CUDA_HOOKS_H */
