/* weights_upload.c: weight-file tensors onto a backend (weights_upload.h). */
#include "models/weights_upload.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

ims_status imsi_weights_upload(ims_backend *be, const ims_weight_tensor *wt, ims_dtype dtype, imsi_tensor *out,
                               ims_error *err)
{
    int name_len = (int)wt->name.len;
    if ((wt->dtype != IMS_DTYPE_F32 && wt->dtype != IMS_DTYPE_F16) ||
        (dtype != IMS_DTYPE_F32 && dtype != IMS_DTYPE_F16))
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%.*s': %s to %s (f32 or f16 expected)", name_len,
                             wt->name.ptr, ims_dtype_name(wt->dtype), ims_dtype_name(dtype));
    ims_status st = imsi_tensor_alloc(be, dtype, wt->ndim, wt->shape, out, err);
    if (st)
        return imsi_error_prefix(err, st, "tensor '%.*s'", name_len, wt->name.ptr);
    size_t n = (size_t)imsi_tensor_numel(out);
    const void *src = wt->data;
    void *converted = NULL;
    if (wt->dtype != dtype) {
        /* File data is only as aligned as the file says: read halves and floats with memcpy. */
        if (!(converted = malloc(n * ims_dtype_size(dtype)))) {
            imsi_tensor_free(out);
            return ims_error_set(err, IMS_ERR_NOMEM, "tensor '%.*s': out of memory converting it", name_len,
                                 wt->name.ptr);
        }
        const unsigned char *p = wt->data;
        for (size_t i = 0; i < n; i++) {
            if (dtype == IMS_DTYPE_F16) {
                float f;
                memcpy(&f, p + 4 * i, 4);
                ((uint16_t *)converted)[i] = ims_f32_to_f16(f);
            } else {
                uint16_t h;
                memcpy(&h, p + 2 * i, 2);
                ((float *)converted)[i] = ims_f16_to_f32(h);
            }
        }
        src = converted;
    }
    st = imsi_backend_upload(be, out, src, n * ims_dtype_size(dtype), err);
    free(converted);
    if (st) {
        imsi_tensor_free(out);
        return imsi_error_prefix(err, st, "tensor '%.*s'", name_len, wt->name.ptr);
    }
    return IMS_OK;
}
