/* convert.h: checkpoint -> weight file (.isw). Detects the architecture from
 * the checkpoint's keys (or takes it from the options), runs its mapper, writes
 * the file crash-safely. Used by `imgsearch convert`.
 */
#ifndef IMS_CONVERT_H
#define IMS_CONVERT_H

#include "checkpoint.h"
#include "weights_writer.h"

/* The mappers (map_inception.c, map_bert.c): read c, add metadata and tensors to wr. */
ims_status imsi_map_inception(const ckpt *c, ims_convert_arch arch, const ims_convert_options *o, imsi_weights_writer *wr,
                              ims_convert_report *report, ims_error *err);

/* An Inception checkpoint through imsi_map_inception into output (synthetic: the
 * file says so, metadata "synthetic" = 1). */
ims_status imsi_convert_checkpoint_to_file(const ckpt *c, ims_convert_arch arch, const ims_convert_options *o,
                                           int synthetic, const char *output, ims_convert_report *report, ims_error *err);

/* A Hugging Face / sentence-transformers model directory (map_bert.c). */
ims_status imsi_convert_model_dir(const char *dir, const char *output, const ims_convert_options *o, ims_convert_report *report,
                                  ims_error *err);

/* The 1000 ImageNet class names in torchvision's order (imagenet_classes.c, generated). */
extern const char *const imsi_imagenet_classes[1000];

#endif /* IMS_CONVERT_H */
