/* backend/cuda_absent.c: the CUDA entry points of a CPU-only build, which say so. */
#include "backend/backend.h"
#include "core/error.h"

#include <stdio.h>

int ims_cuda_compiled(void) { return 0; }

ims_status ims_cuda_device_count(int *count, ims_error *err)
{
    *count = 0;
    return ims_error_set(err, IMS_ERR_UNSUPPORTED, "this build has no CUDA backend (configured without the CUDA toolkit)");
}

ims_status imsi_backend_cuda_create(int device, ims_backend **out, ims_error *err)
{
    (void)device;
    *out = NULL;
    return ims_error_set(err, IMS_ERR_UNSUPPORTED, "this build has no CUDA backend (configured without the CUDA toolkit)");
}

void imsi_cuda_versions(char *buf, size_t size) { snprintf(buf, size, "cuda not built\n"); }
