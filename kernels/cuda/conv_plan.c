/* kernels/cuda/conv_plan.c: the cuDNN convolution's plan keys and candidate
 * rules (conv_plan.h); plain C, built with or without CUDA. */
#include "kernels/cuda/conv_plan.h"

#include "imgsearch.h"

#include <string.h>

void imsi_conv_key_make(imsi_conv_key *key, int n, int h, int w, int c, int o, int kh, int kw, int sh, int sw, int ph,
                        int pw, int y_channels, int precision, int relu, const void *x, const void *wt,
                        const void *bias, const void *y)
{
    memset(key, 0, sizeof *key); /* compared with memcmp */
    key->n = n, key->h = h, key->w = w, key->c = c;
    key->o = o, key->kh = kh, key->kw = kw;
    key->sh = sh, key->sw = sw, key->ph = ph, key->pw = pw;
    key->y_channels = y_channels, key->precision = precision, key->relu = relu != 0;
    key->x_align = (int)((uintptr_t)x % 16), key->w_align = (int)((uintptr_t)wt % 16);
    key->bias_align = (int)((uintptr_t)bias % 16), key->y_align = (int)((uintptr_t)y % 16);
}

int imsi_conv_key_equal(const imsi_conv_key *a, const imsi_conv_key *b) { return !memcmp(a, b, sizeof *a); }

int imsi_conv_candidate_usable(const imsi_conv_key *key, const imsi_conv_candidate *c, size_t workspace_max)
{
    if (!c->ok || c->memory > workspace_max)
        return 0;
    if (key->precision == IMS_PRECISION_FP32) {
        /* fp32 is the reference the other precisions are measured against:
         * FMA math only (DEFAULT_MATH lets cuDNN use TF32 on Ampere and
         * Hopper), and algorithms that sum the products directly (FFT and the
         * large-tile Winograd transforms add errors of their own, ~1e-5). */
        if (c->math != IMSI_CONV_MATH_FMA)
            return 0;
        if (c->algo == IMSI_CONV_ALGO_FFT || c->algo == IMSI_CONV_ALGO_FFT_TILING ||
            c->algo == IMSI_CONV_ALGO_WINOGRAD_NONFUSED)
            return 0;
    } else if (key->precision == IMS_PRECISION_TF32 && c->math == IMSI_CONV_MATH_TENSOR_OP_ALLOW_CONVERSION) {
        return 0; /* it may convert f32 data to f16 (a 5-bit exponent): TF32 keeps f32's range */
    }
    /* the fused call takes an IDENTITY activation with this algorithm only */
    if (!key->relu && c->algo != IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM)
        return 0;
    return 1;
}
