/* inception_v3_arch.c: the Inception-v3 layer table (inception_v3_arch.h),
 * checked against torchvision's module by tests/fixtures/inception/make_fixtures.py. */
#include "models/inception_v3_arch.h"

#include "core/error.h"

#include <stdio.h>

/* name, kh, kw, stride, pad_h, pad_w, input, ends_branch, maxpool_after */
static const iv3_layer stem[] = {
    {"Conv2d_1a_3x3", 3, 3, 2, 0, 0, IV3_IN_PREV, 0, 0},
    {"Conv2d_2a_3x3", 3, 3, 1, 0, 0, IV3_IN_PREV, 0, 0},
    {"Conv2d_2b_3x3", 3, 3, 1, 1, 1, IV3_IN_PREV, 0, 1},
    {"Conv2d_3b_1x1", 1, 1, 1, 0, 0, IV3_IN_PREV, 0, 0},
    {"Conv2d_4a_3x3", 3, 3, 1, 0, 0, IV3_IN_PREV, 1, 1},
};

static const iv3_layer block_a[] = {
    {"branch1x1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 1, 0},
    {"branch5x5_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch5x5_2", 5, 5, 1, 2, 2, IV3_IN_PREV, 1, 0},
    {"branch3x3dbl_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch3x3dbl_2", 3, 3, 1, 1, 1, IV3_IN_PREV, 0, 0},
    {"branch3x3dbl_3", 3, 3, 1, 1, 1, IV3_IN_PREV, 1, 0},
    {"branch_pool", 1, 1, 1, 0, 0, IV3_IN_POOL, 1, 0},
};

static const iv3_layer block_b[] = {
    {"branch3x3", 3, 3, 2, 0, 0, IV3_IN_BLOCK, 1, 0},
    {"branch3x3dbl_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch3x3dbl_2", 3, 3, 1, 1, 1, IV3_IN_PREV, 0, 0},
    {"branch3x3dbl_3", 3, 3, 2, 0, 0, IV3_IN_PREV, 1, 0},
};

static const iv3_layer block_c[] = {
    {"branch1x1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 1, 0},
    {"branch7x7_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch7x7_2", 1, 7, 1, 0, 3, IV3_IN_PREV, 0, 0},
    {"branch7x7_3", 7, 1, 1, 3, 0, IV3_IN_PREV, 1, 0},
    {"branch7x7dbl_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch7x7dbl_2", 7, 1, 1, 3, 0, IV3_IN_PREV, 0, 0},
    {"branch7x7dbl_3", 1, 7, 1, 0, 3, IV3_IN_PREV, 0, 0},
    {"branch7x7dbl_4", 7, 1, 1, 3, 0, IV3_IN_PREV, 0, 0},
    {"branch7x7dbl_5", 1, 7, 1, 0, 3, IV3_IN_PREV, 1, 0},
    {"branch_pool", 1, 1, 1, 0, 0, IV3_IN_POOL, 1, 0},
};

static const iv3_layer block_d[] = {
    {"branch3x3_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch3x3_2", 3, 3, 2, 0, 0, IV3_IN_PREV, 1, 0},
    {"branch7x7x3_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch7x7x3_2", 1, 7, 1, 0, 3, IV3_IN_PREV, 0, 0},
    {"branch7x7x3_3", 7, 1, 1, 3, 0, IV3_IN_PREV, 0, 0},
    {"branch7x7x3_4", 3, 3, 2, 0, 0, IV3_IN_PREV, 1, 0},
};

static const iv3_layer block_e[] = {
    {"branch1x1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 1, 0},
    {"branch3x3_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch3x3_2a", 1, 3, 1, 0, 1, IV3_IN_PREV, 1, 0},
    {"branch3x3_2b", 3, 1, 1, 1, 0, IV3_IN_SIBLING, 1, 0},
    {"branch3x3dbl_1", 1, 1, 1, 0, 0, IV3_IN_BLOCK, 0, 0},
    {"branch3x3dbl_2", 3, 3, 1, 1, 1, IV3_IN_PREV, 0, 0},
    {"branch3x3dbl_3a", 1, 3, 1, 0, 1, IV3_IN_PREV, 1, 0},
    {"branch3x3dbl_3b", 3, 1, 1, 1, 0, IV3_IN_SIBLING, 1, 0},
    {"branch_pool", 1, 1, 1, 0, 0, IV3_IN_POOL, 1, 0},
};

#define LAYERS(a) a, (int)(sizeof a / sizeof *a)

static const iv3_block blocks[IV3_BLOCK_COUNT] = {
    {"", IV3_STEM, LAYERS(stem), 0},
    {"Mixed_5b", IV3_BLOCK_A, LAYERS(block_a), 0},
    {"Mixed_5c", IV3_BLOCK_A, LAYERS(block_a), 0},
    {"Mixed_5d", IV3_BLOCK_A, LAYERS(block_a), 0},
    {"Mixed_6a", IV3_BLOCK_B, LAYERS(block_b), 1},
    {"Mixed_6b", IV3_BLOCK_C, LAYERS(block_c), 0},
    {"Mixed_6c", IV3_BLOCK_C, LAYERS(block_c), 0},
    {"Mixed_6d", IV3_BLOCK_C, LAYERS(block_c), 0},
    {"Mixed_6e", IV3_BLOCK_C, LAYERS(block_c), 0},
    {"Mixed_7a", IV3_BLOCK_D, LAYERS(block_d), 1},
    {"Mixed_7b", IV3_BLOCK_E, LAYERS(block_e), 0},
    {"Mixed_7c", IV3_BLOCK_E, LAYERS(block_e), 0},
};

const iv3_block *imsi_iv3_blocks(void) { return blocks; }

void imsi_iv3_layer_name(const iv3_block *b, const iv3_layer *l, char *buf, size_t size)
{
    if (b->kind == IV3_STEM)
        snprintf(buf, size, "%s", l->name);
    else
        snprintf(buf, size, "%s.%s", b->name, l->name);
}

ims_status imsi_iv3_check_channels(const int64_t (*out_in)[2], int64_t *features, ims_error *err)
{
    int64_t channels = 3; /* RGB */
    int k = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT; bi++) {
        const iv3_block *b = &blocks[bi];
        int64_t block_in = channels, prev_out = channels, prev_in = channels, concat = 0;
        for (int li = 0; li < b->layer_count; li++, k++) {
            const iv3_layer *l = &b->layers[li];
            int64_t want = l->input == IV3_IN_PREV      ? prev_out
                           : l->input == IV3_IN_SIBLING ? prev_in
                                                        : block_in;
            if (out_in[k][1] != want) {
                char name[96];
                imsi_iv3_layer_name(b, l, name, sizeof name);
                return ims_error_set(err, IMS_ERR_FORMAT,
                                     "'%s' takes %lld input channels, but its input has %lld (not Inception-v3's topology)",
                                     name, (long long)out_in[k][1], (long long)want);
            }
            prev_in = want;
            prev_out = out_in[k][0];
            if (l->ends_branch)
                concat += out_in[k][0];
        }
        channels = concat + (b->pool_passthrough ? block_in : 0);
    }
    *features = channels;
    return IMS_OK;
}
