/* inception_v3.h: the Inception-v3 graph (engine/models/inception_v3.c).
 *
 * The public API is in include/imgsearch.h ("image encoder"); this header
 * holds the debugging and benchmark hooks that tests and benches use.
 */
#ifndef IMS_INCEPTION_V3_H
#define IMS_INCEPTION_V3_H

#include "backend/backend.h"

/* CUDA: replay each batch size's forward as a captured CUDA graph (after one
 * plain run of that size, which chooses the cuDNN algorithms). Off by default;
 * IMS_ERR_UNSUPPORTED on the CPU backend. */
ims_status imsi_image_encoder_set_graphs(ims_image_encoder *enc, int on, ims_error *err);

/* Blocks for debugging: 0 = the stem (after its last max pool), 1..11 =
 * Mixed_5b .. Mixed_7c. block_shape: (H, W, C) of one image's output. */
#define IMS_IMAGE_ENCODER_BLOCKS 12
ims_status imsi_image_encoder_block_shape(const ims_image_encoder *enc, int block, int64_t shape[3], ims_error *err);
/* Runs the network on uint8 images up to `block` and copies its output
 * (batch, H, W, C) f32 into out (count floats, at least batch * H * W * C). */
ims_status imsi_image_encoder_forward_block(ims_image_encoder *enc, const uint8_t *images, int batch, int block,
                                            float *out, size_t count, ims_error *err);

#endif /* IMS_INCEPTION_V3_H */
