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

size_t imsi_cuda_version_list(ims_library_version *out, size_t max)
{
    if (max < 1)
        return 1;
    out[0].name = "cuda";
    snprintf(out[0].version, sizeof out[0].version, "not built");
    return 1;
}

int imsi_cuda_pci_bus_id(const ims_backend *be, char *buf, int size)
{
    (void)be;
    if (size > 0)
        buf[0] = '\0';
    return -1;
}
