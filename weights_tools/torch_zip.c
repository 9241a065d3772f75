/* torch_zip.c: placeholder until the reader lands. */
#include "checkpoint.h"

#include "../engine/error.h"

ims_status ckpt_read_torch_zip(ckpt *c, ims_error *err)
{
    (void)c;
    return ims_fail(err, IMS_ERR_UNSUPPORTED, "torch_zip: reader not written yet");
}
