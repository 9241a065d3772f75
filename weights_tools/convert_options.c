/* convert_options.c: the converter's architecture names and option defaults,
 * shared by the converter and its mappers. */
#include "convert.h"

#include "core/error.h"

#include <string.h>

const char *ims_convert_arch_name(ims_convert_arch arch)
{
    switch (arch) {
    case IMS_CONVERT_ARCH_AUTO: return "auto";
    case IMS_CONVERT_ARCH_INCEPTION_V3: return "inception_v3";
    case IMS_CONVERT_ARCH_INCEPTION_V3_FID: return "inception_v3_fid";
    case IMS_CONVERT_ARCH_BERT: return "bert";
    }
    return "?";
}

ims_status ims_convert_arch_parse(const char *text, ims_convert_arch *out, ims_error *err)
{
    for (int a = IMS_CONVERT_ARCH_AUTO; a <= IMS_CONVERT_ARCH_BERT; a++)
        if (strcmp(text, ims_convert_arch_name((ims_convert_arch)a)) == 0) {
            *out = (ims_convert_arch)a;
            return IMS_OK;
        }
    return ims_error_set(err, IMS_ERR_ARGUMENT, "unknown architecture '%s' (auto, inception_v3, inception_v3_fid, bert)",
                         text);
}

void ims_convert_options_init(ims_convert_options *o)
{
    memset(o, 0, sizeof *o);
    o->arch = IMS_CONVERT_ARCH_AUTO;
    o->dtype = IMS_DTYPE_F32;
    o->transform_input = -1;
}
