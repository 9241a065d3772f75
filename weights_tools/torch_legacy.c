/* torch_legacy.c: placeholder until the reader lands. */
#include "checkpoint.h"

#include "../engine/error.h"

ims_status ckpt_read_torch_legacy(ckpt *c, ims_error *err)
{
    (void)c;
    return ims_fail(err, IMS_ERR_UNSUPPORTED, "torch_legacy: reader not written yet");
}
