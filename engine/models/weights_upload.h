/* weights_upload.h: a weight file's tensor onto a backend, in the dtype the
 * model computes in: what Inception-v3 and the text encoder share. */
#ifndef IMS_WEIGHTS_UPLOAD_H
#define IMS_WEIGHTS_UPLOAD_H

#include "backend/backend.h"

/* out = a new backend tensor of wt's shape and `dtype` (f32 or f16), holding
 * wt's f32 or f16 values (converted with round-to-nearest-even when the
 * dtypes differ). The message names the tensor. */
ims_status imsi_weights_upload(ims_backend *be, const ims_weight_tensor *wt, ims_dtype dtype, imsi_tensor *out,
                               ims_error *err);

#endif /* IMS_WEIGHTS_UPLOAD_H */
