/* safetensors.c: placeholder until the reader lands. */
#include "checkpoint.h"

#include "../engine/error.h"

ims_status ckpt_read_safetensors(ckpt *c, ims_error *err)
{
    (void)c;
    return ims_fail(err, IMS_ERR_UNSUPPORTED, "safetensors: reader not written yet");
}
