/* synthetic.h: the generator of synthetic weights (synthetic.c), shared with
 * the tests that rebuild the golden models of tests/fixtures/inception_golden.
 *
 * Element i (1-based) of tensor `name` = float32(lo + (hi - lo) * u_i), u_i =
 * (splitmix64 output i from seed fnv1a64(name)) >> 11 / 2^53, in double with
 * one rounding: exactly make_golden.py's generator.
 */
#ifndef IMS_SYNTHETIC_H
#define IMS_SYNTHETIC_H

#include "imgsearch.h"

typedef struct synth_tensor {
    char name[128];
    int ndim;
    int64_t shape[4], numel;
    double lo, hi;
} synth_tensor;

uint64_t imsi_synth_fnv1a64(const char *s);
/* The next u_i of a stream seeded with imsi_synth_fnv1a64(name). */
double imsi_synth_uniform(uint64_t *state);

#define SYNTH_INCEPTION_V3_TENSORS (94 * 5 + 2)
/* torchvision's Inception-v3 eval tensors with their generator ranges (out:
 * SYNTH_INCEPTION_V3_TENSORS entries); returns the count. */
int imsi_synth_inception_v3_tensors(synth_tensor *out);

/* A safetensors file image of the tensors (F32, little-endian), malloc'd. */
ims_status imsi_synth_safetensors(const synth_tensor *ts, int n, unsigned char **out, size_t *size, ims_error *err);

#endif /* IMS_SYNTHETIC_H */
