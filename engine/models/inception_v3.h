/* inception_v3.h: the Inception-v3 graph (engine/models/inception_v3.c).
 *
 * The public API is in include/imgsearch.h ("image encoder"); this header
 * only names the graph's internals that tests and benches may want.
 */
#ifndef IMS_INCEPTION_V3_H
#define IMS_INCEPTION_V3_H

#include "backend/backend.h"

/* Device bytes the encoder holds for activations at its current batch capacity. */
size_t iv3_activation_bytes(const ims_image_encoder *enc);

#endif /* IMS_INCEPTION_V3_H */
