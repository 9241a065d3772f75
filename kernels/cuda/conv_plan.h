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

/* Whether a candidate may run a call of `key` with at most workspace_max
 * bytes of workspace: cuDNN succeeded; fp32 with FMA math (no TF32) and no
 * FFT or non-fused Winograd; tf32 without conversion to f16; the fused
 * call's IDENTITY activation (no ReLU) with IMPLICIT_PRECOMP_GEMM only. */
int imsi_conv_candidate_usable(const imsi_conv_key *key, const imsi_conv_candidate *c, size_t workspace_max);

#endif /* IMS_CONV_PLAN_H */
