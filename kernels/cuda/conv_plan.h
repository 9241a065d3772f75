/* kernels/cuda/conv_plan.h: what the cuDNN convolution (kernels/cuda/conv2d.c)
 * decides without a device, in plain C so that every build has it and the
 * unit tests check it on the CPU (tests/unit/test_cuda_logic.c).
 *
 * A plan is cached per key: everything that decides which cuDNN algorithm is
 * valid and fast for a call. Candidates mirror cuDNN's algorithm results with
 * our own small types (the CPU-only build has no cudnn.h); conv2d.c checks
 * that the numbers agree with cuDNN's enums.
 */
#ifndef IMS_CONV_PLAN_H
#define IMS_CONV_PLAN_H

#include "imgsearch.h"

#include <stddef.h>
#include <stdint.h>

/* A convolution call as far as its plan is concerned. Compared with memcmp:
 * built by imsi_conv_key_make, which zeroes the padding. */
typedef struct imsi_conv_key {
    int n, h, w, c;     /* x (N, H, W, C) */
    int o, kh, kw;      /* w (O, KH, KW, C) */
    int sh, sw, ph, pw; /* strides, padding */
    int y_channels;     /* y (N, OH, OW, y_channels); the call writes O of them */
    int precision;      /* ims_precision */
    int relu;
    /* Addresses mod 16: cuDNN's vectorized kernels (fp16 NHWC above all)
     * accept a tensor only at a 16-byte boundary, so a plan made for an
     * aligned slice (channel offset x element size = 0 mod 16) may be
     * invalid at an odd channel offset. */
    int x_align, w_align, bias_align, y_align;
} imsi_conv_key;

/* x, w, bias, y: the addresses the call reads and writes (y: the slice's
 * first channel). */
void imsi_conv_key_make(imsi_conv_key *key, int n, int h, int w, int c, int o, int kh, int kw, int sh, int sw, int ph,
                        int pw, int y_channels, int precision, int relu, const void *x, const void *wt,
                        const void *bias, const void *y);
int imsi_conv_key_equal(const imsi_conv_key *a, const imsi_conv_key *b);

/* Output size along one axis: (in + 2 pad - k) / stride + 1. */
int imsi_conv_out(int in, int k, int stride, int pad);

/* The most images one cuDNN call may take: cuDNN refuses tensors of 2^31
 * elements or more (its strides are ints), so x (n, h, w, c), the strided
 * output (n, oh, ow, y_channels) and the packed one (n, oh, ow, o <=
 * y_channels) must each stay below; larger batches run in parts of at most
 * this many images. 0 if one image is already too large. */
int imsi_conv_max_batch(int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow, int64_t y_channels);

/* cuDNN's forward algorithms and math types, by their cudnn.h numbers. */
typedef enum imsi_conv_algo {
    IMSI_CONV_ALGO_IMPLICIT_GEMM = 0,
    IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
    IMSI_CONV_ALGO_GEMM = 2,
    IMSI_CONV_ALGO_DIRECT = 3,
    IMSI_CONV_ALGO_FFT = 4,
    IMSI_CONV_ALGO_FFT_TILING = 5,
    IMSI_CONV_ALGO_WINOGRAD = 6,
    IMSI_CONV_ALGO_WINOGRAD_NONFUSED = 7,
} imsi_conv_algo;

typedef enum imsi_conv_math {
    IMSI_CONV_MATH_DEFAULT = 0,
    IMSI_CONV_MATH_TENSOR_OP = 1,
    IMSI_CONV_MATH_TENSOR_OP_ALLOW_CONVERSION = 2,
    IMSI_CONV_MATH_FMA = 3,
} imsi_conv_math;

/* One of cudnnFindConvolutionForwardAlgorithmEx's results. */
typedef struct imsi_conv_candidate {
    int algo;      /* imsi_conv_algo */
    int ok;        /* cuDNN's status was success */
    int math;      /* imsi_conv_math */
    size_t memory; /* workspace bytes */
} imsi_conv_candidate;

/* How a call runs. */
typedef enum imsi_conv_mode {
    IMSI_CONV_MODE_NONE = 0,     /* cuDNN ran nothing: the failure is cached */
    IMSI_CONV_MODE_FUSED = 1,    /* cudnnConvolutionBiasActivationForward straight into the slice */
    IMSI_CONV_MODE_FALLBACK = 2, /* cudnnConvolutionForward into a packed buffer, then our
                                  * bias + ReLU + slice-copy kernel (conv_epilogue.cu) */
} imsi_conv_mode;

/* Whether a candidate may run a call of `key` in `mode` with at most
 * workspace_max bytes of workspace: cuDNN succeeded; fp32 with FMA math (no
 * TF32) and no FFT or non-fused Winograd; tf32 without conversion to f16; the
 * fused call's IDENTITY activation (no ReLU) with IMPLICIT_PRECOMP_GEMM only. */
int imsi_conv_candidate_usable(const imsi_conv_key *key, int mode, const imsi_conv_candidate *c, size_t workspace_max);

/* At most this many candidates per mode: cuDNN's 8 algorithms, each with two
 * math types, as cudnnFind reports them, then as many from its heuristics. */
#define IMSI_CONV_MAX_CANDIDATES 32

/* What the search needs from cuDNN (conv2d.c; fakes in the unit test). `plan`
 * is the caller's per-key state (descriptors), made by prepare. */
typedef struct imsi_conv_search_ops {
    void *ctx;
    ims_status (*prepare)(void *ctx, const imsi_conv_key *key, void **plan, ims_error *err);
    void (*release)(void *ctx, void *plan);
    /* Up to max candidates for `mode`, fastest first (cuDNN's timed search on
     * that mode's output layout); -1 on a failure not to be cached (in err:
     * out of memory, a broken device). */
    int (*gather)(void *ctx, void *plan, int mode, imsi_conv_candidate *out, int max, ims_error *err);
    /* Runs the call once in `mode` with c (c->memory: updated to this shape's
     * workspace); 1 if cuDNN ran it, 0 if it refused. Never during capture. */
    int (*attempt)(void *ctx, void *plan, int mode, imsi_conv_candidate *c);
} imsi_conv_search_ops;

/* A cached plan: the key, how it runs, and why not where it cannot. */
typedef struct imsi_conv_plan {
    imsi_conv_key key;
    int mode; /* imsi_conv_mode */
    imsi_conv_candidate cand;
    int tried_fused, tried_fallback; /* usable candidates attempted */
    int from_batch;                  /* > 0: the choice of the plan for this batch size, reused */
    char failure[200];               /* mode NONE: the message every call returns */
    void *impl;                      /* the caller's state (prepare) */
} imsi_conv_plan;

typedef struct imsi_conv_cache {
    imsi_conv_plan *plans;
    size_t count, cap;
    int searches; /* plans searched (each a cuDNN timed search): tests count them */
    int reuses;   /* plans that took a nearby batch size's choice instead */
} imsi_conv_cache;

/* The search for one key: each usable fused candidate in cuDNN's order, then
 * each usable fallback one; the first call cuDNN runs wins (force_fallback:
 * no fused call). Fills pl's mode (NONE if nothing ran), cand and counts; -1
 * if gather failed (err set). */
int imsi_conv_search(imsi_conv_plan *pl, int force_fallback, size_t workspace_max, const imsi_conv_search_ops *ops,
                     ims_error *err);

/* The plan for key: the cached one, or one made now and cached, failure
 * included, so that no search runs twice. A new batch size (the last,
 * partial batch of every indexing run) first tries the choice of the
 * nearest batch size planned with everything else equal: if cuDNN runs it,
 * that is the plan, without a search over every algorithm. A cached failure returns
 * IMS_ERR_UNSUPPORTED with its message; a search cannot run during graph
 * capture (capturing: IMS_ERR_UNSUPPORTED, nothing cached; run the batch
 * size once before capturing it). */
ims_status imsi_conv_cache_get(imsi_conv_cache *cache, const imsi_conv_key *key, int capturing, int force_fallback,
                               size_t workspace_max, const imsi_conv_search_ops *ops, imsi_conv_plan **out,
                               ims_error *err);

/* The plan of the batch size nearest to key's with everything else equal
 * and a way to run (ties: the larger batch), or NULL. */
const imsi_conv_plan *imsi_conv_cache_nearest(const imsi_conv_cache *cache, const imsi_conv_key *key);

/* Releases every plan (ops->release on each impl). */
void imsi_conv_cache_free(imsi_conv_cache *cache, const imsi_conv_search_ops *ops);

#endif /* IMS_CONV_PLAN_H */
