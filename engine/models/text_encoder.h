/* text_encoder.h: the BERT sentence encoder's internal entry points (tests).
 *
 * The public API is in include/imgsearch.h (ims_text_encoder_*). This adds what
 * tests need to say which layer went wrong first.
 */
#ifndef IMS_TEXT_ENCODER_H
#define IMS_TEXT_ENCODER_H

#include "imgsearch.h"

/* Number of layers (the hidden states are the embeddings' and one per layer). */
int imsi_text_encoder_layers(const ims_text_encoder *enc);

/* Runs ids (B, T) / lengths (B) as one batch, no bucketing, and writes the
 * masked mean over tokens of every hidden state: out (B, layers + 1, D) f32,
 * [0] the embeddings' LayerNorm output, [l] layer l's output (not normalized). */
ims_status imsi_text_encoder_layer_means(ims_text_encoder *enc, const int32_t *ids, const int32_t *lengths, int b,
                                         int t, float *out, ims_error *err);

/* The most tokens (rows x padded length) one bucket runs (default 8192); tests
 * lower it to force many buckets. At least the longest sequence's length. */
void imsi_text_encoder_set_bucket_tokens(ims_text_encoder *enc, int tokens);

#endif /* IMS_TEXT_ENCODER_H */
