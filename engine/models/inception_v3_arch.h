/* inception_v3_arch.h: the topology of torchvision's Inception-v3, as data.
 *
 * One source of truth for the converter (which checks a checkpoint against it)
 * and the graph (which runs it). Layer names are torchvision's
 * (torchvision/models/inception.py); every layer is a BasicConv2d: convolution
 * without bias, BatchNorm (eps 0.001), ReLU. Channel counts are not fixed here:
 * they come from the weights, and imsi_iv3_check_channels() verifies that they
 * connect. Concatenation order inside a block = the order of its branches.
 */
#ifndef IMS_INCEPTION_V3_ARCH_H
#define IMS_INCEPTION_V3_ARCH_H

#include "imgsearch.h"

typedef enum iv3_input {
    IV3_IN_BLOCK,   /* the block's input */
    IV3_IN_PREV,    /* the previous layer's output */
    IV3_IN_SIBLING, /* the same input as the previous layer (InceptionE's split 1x3 / 3x1 pairs) */
    IV3_IN_POOL,    /* a 3x3 stride-1 pad-1 pool of the block's input (avg; max in FID's Mixed_7c) */
} iv3_input;

typedef struct iv3_layer {
    const char *name;     /* within its block: "branch5x5_2"; the stem's are global: "Conv2d_1a_3x3" */
    int kh, kw, stride, pad_h, pad_w;
    iv3_input input;
    int ends_branch;      /* its output is one of the block's concatenated outputs */
    int maxpool_after;    /* stem only: a 3x3 stride-2 max pool follows */
} iv3_layer;

typedef enum iv3_block_kind {
    IV3_STEM,
    IV3_BLOCK_A, /* Mixed_5b..5d */
    IV3_BLOCK_B, /* Mixed_6a: grid reduction, max-pool passthrough */
    IV3_BLOCK_C, /* Mixed_6b..6e */
    IV3_BLOCK_D, /* Mixed_7a: grid reduction, max-pool passthrough */
    IV3_BLOCK_E, /* Mixed_7b, 7c */
} iv3_block_kind;

typedef struct iv3_block {
    const char *name; /* "Mixed_5b"; "" for the stem */
    iv3_block_kind kind;
    const iv3_layer *layers;
    int layer_count;
    int pool_passthrough; /* a 3x3 stride-2 max pool of the input is concatenated last */
} iv3_block;

#define IV3_BLOCK_COUNT 12 /* the stem and 11 Mixed blocks */
#define IV3_LAYER_COUNT 94

const iv3_block *imsi_iv3_blocks(void);

/* "Mixed_5b.branch1x1" or "Conv2d_1a_3x3" into buf. */
void imsi_iv3_layer_name(const iv3_block *b, const iv3_layer *l, char *buf, size_t size);

/* Checks that the layers' channel counts connect, given each layer's (out, in)
 * in block order (IV3_LAYER_COUNT pairs) and 3 input channels; returns the
 * final feature width (2048 for torchvision) in *features. */
ims_status imsi_iv3_check_channels(const int64_t (*out_in)[2], int64_t *features, ims_error *err);

#endif /* IMS_INCEPTION_V3_ARCH_H */
