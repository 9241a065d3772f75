/* convert.c: `imgsearch convert`: open a checkpoint, pick the architecture,
 * run its mapper, write the weight file. */
#include "convert.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static ims_convert_arch detect_arch(const ckpt *c)
{
    const ckpt_tensor *fc = imsi_ckpt_find(c, "fc.weight");
    if (imsi_ckpt_find(c, "Mixed_7c.branch_pool.conv.weight"))
        return fc && fc->ndim == 2 && fc->shape[0] == 1008 ? IMS_CONVERT_ARCH_INCEPTION_V3_FID : IMS_CONVERT_ARCH_INCEPTION_V3;
    if (imsi_ckpt_find(c, "encoder.layer.0.attention.self.query.weight") ||
        imsi_ckpt_find(c, "bert.encoder.layer.0.attention.self.query.weight"))
        return IMS_CONVERT_ARCH_BERT;
    return IMS_CONVERT_ARCH_AUTO;
}

ims_status imsi_convert_checkpoint_to_file(const ckpt *c, ims_convert_arch arch, const ims_convert_options *o,
                                           int synthetic, const char *output, ims_convert_report *report, ims_error *err)
{
    imsi_weights_writer *wr = NULL;
    ims_status st = imsi_weights_writer_create(&wr, err);
    if (!st)
        st = imsi_map_inception(c, arch, o, wr, report, err);
    if (!st && synthetic)
        st = imsi_weights_writer_add_i64(wr, "synthetic", 1, err);
    if (!st)
        st = imsi_weights_writer_write_file(wr, output, err);
    imsi_weights_writer_free(wr);
    return st;
}

static ims_status convert_checkpoint(const char *input, const char *output, const ims_convert_options *o,
                                     ims_convert_report *report, ims_error *err)
{
    ckpt *c = NULL;
    ims_status st = imsi_ckpt_open(input, &c, err);
    if (st)
        return st;
    report->format = imsi_ckpt_format_name(c->format);
    report->tensors_in = c->count;
    /* DataParallel saves every key as "module.<key>". */
    st = imsi_ckpt_strip_prefix(c, "module.", err);
    ims_convert_arch arch = st ? IMS_CONVERT_ARCH_AUTO : o->arch == IMS_CONVERT_ARCH_AUTO ? detect_arch(c) : o->arch;
    report->arch = arch;
    if (!st && arch == IMS_CONVERT_ARCH_AUTO)
        st = ims_error_set(err, IMS_ERR_FORMAT,
                           "cannot tell the architecture from the %zu keys (first: '%s'); name it with --arch",
                           c->count, c->count ? c->tensors[0].name : "none");
    else if (arch == IMS_CONVERT_ARCH_BERT)
        st = ims_error_set(err, IMS_ERR_ARGUMENT,
                           "a BERT checkpoint converts from its model directory (config.json, vocab.txt and the "
                           "weights): pass the directory, not the weights file");
    if (!st)
        st = imsi_convert_checkpoint_to_file(c, arch, o, 0, output, report, err);
    imsi_ckpt_free(c);
    if (st)
        return imsi_error_prefix(err, st, "converting '%s'", input);
    return IMS_OK;
}

ims_status ims_convert(const char *input, const char *output, const ims_convert_options *o, ims_convert_report *report,
                       ims_error *err)
{
    memset(report, 0, sizeof *report);
    struct stat sb;
    if (stat(input, &sb) != 0)
        return ims_error_set(err, IMS_ERR_IO, "cannot read '%s'", input);
    ims_status st = S_ISDIR(sb.st_mode) ? imsi_convert_model_dir(input, output, o, report, err)
                                        : convert_checkpoint(input, output, o, report, err);
    if (!st && stat(output, &sb) == 0)
        report->bytes_out = (uint64_t)sb.st_size;
    return st;
}
