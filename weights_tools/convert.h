/* convert.h: checkpoint -> weight file (.isw). Detects the architecture from
 * the checkpoint's keys (or takes it from the options), runs its mapper, writes
 * the file crash-safely. Used by `imgsearch convert`.
 */
#ifndef IMS_CONVERT_H
#define IMS_CONVERT_H

#include "checkpoint.h"
#include "weights_writer.h"

typedef enum convert_arch {
    CONVERT_ARCH_AUTO = 0,
    CONVERT_ARCH_INCEPTION_V3,     /* torchvision */
    CONVERT_ARCH_INCEPTION_V3_FID, /* pytorch-fid's FID Inception */
    CONVERT_ARCH_BERT,             /* a BERT-family sentence encoder */
} convert_arch;

const char *convert_arch_name(convert_arch arch); /* "inception_v3", ... */
ims_status convert_arch_parse(const char *text, convert_arch *out, ims_error *err);

typedef struct convert_options {
    convert_arch arch;
    ims_dtype dtype;         /* IMS_DTYPE_F32 (default) or IMS_DTYPE_F16 for weight matrices */
    int transform_input;     /* Inception: -1 = the variant's default (torchvision on, FID off), 0, 1 */
    const char *labels_path; /* Inception: a file of class names, one per line (default: ImageNet's 1000) */
    const char *source;      /* recorded as metadata "source" */
} convert_options;

void convert_options_init(convert_options *o);

/* What the conversion did, for the CLI's summary. */
typedef struct convert_report {
    convert_arch arch;
    ckpt_format format;
    size_t tensors_in, tensors_out, tensors_ignored;
    uint64_t bytes_out;
} convert_report;

/* input: a checkpoint file, or a Hugging Face model directory (BERT). */
ims_status convert_run(const char *input, const char *output, const convert_options *o, convert_report *report,
                       ims_error *err);

/* The mappers (map_inception.c, map_bert.c): read c, add metadata and tensors to wr. */
ims_status map_inception(const ckpt *c, convert_arch arch, const convert_options *o, ims_weights_writer *wr,
                         convert_report *report, ims_error *err);

/* A Hugging Face / sentence-transformers model directory (map_bert.c). */
ims_status convert_model_dir(const char *dir, const char *output, const convert_options *o, convert_report *report,
                             ims_error *err);

/* Stores a float tensor as the requested dtype (f32 or f16), taking ownership of values. */
ims_status convert_add_floats(ims_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                              const int64_t *shape, float *values, ims_error *err);

/* The 1000 ImageNet class names in torchvision's order (imagenet_classes.c, generated). */
extern const char *const imagenet_classes[1000];

#endif /* IMS_CONVERT_H */
