/* create.c: backend creation: the one file that knows every backend. */
#include "backend/backend.h"

#include "core/error.h"

ims_status ims_backend_create(ims_backend_kind kind, int device, ims_backend **out, ims_error *err)
{
    *out = NULL;
    switch (kind) {
    case IMS_BACKEND_CPU: return imsi_backend_cpu_create(out, err);
    case IMS_BACKEND_CUDA: return imsi_backend_cuda_create(device, out, err);
    }
    return ims_error_set(err, IMS_ERR_ARGUMENT, "unknown backend kind %d", (int)kind);
}
