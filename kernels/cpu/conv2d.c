/* conv2d.c: the conv2d op (engine/backend/backend.h) on the CPU, fp32.
 *
 * Filters are OHWI (cuDNN's KRSC); writing a channel slice of y is how a block
 * concatenates its branches without copies. Per image: a 1x1 stride-1
 * unpadded convolution is one GEMM on the NHWC rows as they are; anything
 * else first gathers im2col rows (OH * OW, KH * KW * C) in the filter's
 * (ky, kx, c) order. GEMMs are OpenBLAS sgemm with ldc = Ctot. Images run one
 * at a time, so an image's result does not depend on the batch it is in.
 *
 * Threads: only OpenBLAS's. The gathers and epilogues here are memory-bound
 * and serial on purpose: an OpenMP region between two GEMMs leaves its
 * threads spinning while OpenBLAS's own threads (a separate pool) need the
 * cores, which made the whole network 5x slower on 2 cores.
 */
#include "ops_cpu.h"

#include <cblas.h>
#include <string.h>

/* col (OH * OW, KH * KW * C): one image's patches; zeros where padding. */
static void im2col_nhwc(const float *x, // (H, W, C)
                        int h, int w, int c, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                        float *col) // (OH * OW, KH * KW * C)
{
    size_t row_len = (size_t)kh * kw * c;
    for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *row = col + ((size_t)oy * ow + ox) * row_len;
            for (int ky = 0; ky < kh; ky++) {
                int iy = oy * sh - ph + ky;
                for (int kx = 0; kx < kw; kx++) {
                    int ix = ox * sw - pw + kx;
                    float *dst = row + ((size_t)ky * kw + kx) * c;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                        memset(dst, 0, (size_t)c * sizeof *dst);
                    else
                        memcpy(dst, x + ((size_t)iy * w + ix) * c, (size_t)c * sizeof *dst);
                }
            }
        }
    }
}

/* y rows (rows, ldy) channels [0, o) = bias, before a beta = 1 GEMM. */
static void fill_bias(float *y, size_t rows, int o, int ldy, const float *bias)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(y + (size_t)r * ldy, bias, (size_t)o * sizeof *y);
}

static void relu_rows(float *y, size_t rows, int o, int ldy)
{
    for (size_t r = 0; r < rows; r++) {
        float *p = y + (size_t)r * ldy;
        for (int i = 0; i < o; i++)
            p[i] = p[i] > 0.0f ? p[i] : 0.0f;
    }
}

/* 1 if the convolution is a plain GEMM on NHWC rows (no im2col workspace). */
static int conv2d_is_gemm(int kh, int kw, int sh, int sw, int ph, int pw)
{
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
}

size_t imsi_cpu_conv2d_scratch_bytes(const imsi_cpu_conv2d_shape *s)
{
    if (conv2d_is_gemm(s->kh, s->kw, s->sh, s->sw, s->ph, s->pw))
        return 0;
    return (size_t)s->oh * s->ow * s->kh * s->kw * s->c * sizeof(float);
}

void imsi_cpu_conv2d_nhwc(const imsi_cpu_conv2d_shape *s, const float *x, const float *w, const float *bias, int relu,
                          float *y, int y_channels, int y_offset, void *scratch)
{
    float *col = scratch; /* (OH * OW, KH * KW * C), or NULL for a GEMM shape */
    size_t rows = (size_t)s->oh * s->ow;
    int k = s->kh * s->kw * s->c;
    int gemm = conv2d_is_gemm(s->kh, s->kw, s->sh, s->sw, s->ph, s->pw);
    for (int b = 0; b < s->n; b++) {
        const float *xb = x + (size_t)b * s->h * s->w * s->c;      // (H, W, C)
        float *yb = y + (size_t)b * rows * y_channels + y_offset; // (OH, OW, Ctot) from channel c0
        const float *a = xb;
        if (!gemm) {
            im2col_nhwc(xb, s->h, s->w, s->c, s->kh, s->kw, s->sh, s->sw, s->ph, s->pw, s->oh, s->ow, col);
            a = col;
        }
        float beta = 0.0f;
        if (bias) {
            fill_bias(yb, rows, s->o, y_channels, bias);
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, s->o, k, 1.0f, a, k, w, k, beta, yb,
                    y_channels);
        if (relu)
            relu_rows(yb, rows, s->o, y_channels);
    }
}
