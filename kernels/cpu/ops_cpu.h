/* ops_cpu.h: the CPU reference of every backend op (kernels/cpu/<op>.c).
 *
 * Each function implements the op of the same name in
 * engine/backend/backend.h on raw row-major arrays; the op's contract
 * (shapes, dtypes, aliasing, what may be NULL) is written there only, and the
 * arguments were checked by engine/backend/backend.c. Below: how a function's
 * parameters map onto that contract. These are the references the GPU
 * kernels are tested against, so precision comes before speed where the two
 * conflict (sums in double). f16 data is IEEE binary16 bits in uint16_t; a
 * flag `f16` says the activations are f16 rather than f32.
 */
#ifndef IMS_OPS_CPU_H
#define IMS_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

/* convert: one direction per function. */
void imsi_cpu_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void imsi_cpu_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/* l2_normalize_rows: y into y_f32 or y_f16 (the other NULL). */
void imsi_cpu_l2_normalize_rows(const float *x, float *y_f32, uint16_t *y_f16, float *norms, int n, int d);

/* linear: x, w, y f32, or f16 when f16 is set; bias f32 or NULL. Returns 0,
 * or -1 if the f16 path's f32 copies cannot be allocated. */
int imsi_cpu_linear(const void *x, const void *w, const float *bias, void *y, int f16, int m, int n, int k);

/* One convolution's sizes: x (n, h, w, c), filter (o, kh, kw, c), output (n, oh, ow, o). */
typedef struct cpu_conv2d_shape {
    int n, h, w, c, o, kh, kw, sh, sw, ph, pw, oh, ow;
} cpu_conv2d_shape;

/* 1 if the convolution is a plain GEMM on NHWC rows (no im2col workspace). */
int imsi_cpu_conv2d_is_gemm(int kh, int kw, int sh, int sw, int ph, int pw);

/* conv2d (fp32): y has y_channels channels, the output goes to [y_offset, y_offset + o).
 * col: (oh * ow, kh * kw * c) workspace, unused (NULL) for GEMM shapes. */
void imsi_cpu_conv2d_nhwc(const cpu_conv2d_shape *s, const float *x, const float *w, const float *bias, int relu,
                          float *y, int y_channels, int y_offset, float *col);

/* pool2d (f32): max != 0 for a max pool; y has y_channels channels, the output goes
 * to [y_offset, y_offset + c). */
void imsi_cpu_pool2d_nhwc(const float *x, int n, int h, int w, int c, int max, int k, int stride, int pad,
                          int count_include_pad, float *y, int oh, int ow, int y_channels, int y_offset);

/* global_avg_pool (f32): x (n, hw, c). */
void imsi_cpu_global_avg_pool_nhwc(const float *x, int n, int hw, int c, float *y);

/* input_u8 (f32 output): pixels = N * H * W. */
void imsi_cpu_input_u8(const uint8_t *x, size_t pixels, const float scale[3], const float shift[3], float *y);

/* knn_select: the table in table_f32 or table_f16 (the other NULL). Blocked
 * over rows (fp32 sgemm; f16 blocks converted to f32 first). Returns 0, or -1
 * if its scratch memory (about (b * (k + 1M / b) + 16K * d) * 4 bytes) cannot
 * be allocated. */
int imsi_cpu_knn_select(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                        int b, int k, int32_t *ids, float *scores);

/* Below this many elements of work an op runs on one thread: a parallel region
 * costs more than it saves on a short sentence (batch 1), and much more when
 * the cores are shared (a barrier waits for a descheduled thread). */
#define CPU_PARALLEL_MIN (1 << 18)

/* One row's LayerNorm (backend.h): y (h) from row (h), statistics in double;
 * y f32, or f16 when y_f16. Shared by embed_layernorm and add_layernorm. */
void imsi_cpu_layernorm_row(const double *row, int h, double eps, const float *gamma, const float *beta, void *y,
                            int y_f16);
/* embed_layernorm: type0 is row 0 of the type table. */
void imsi_cpu_embed_layernorm(const int32_t *ids, const float *word, const float *pos, const float *type0,
                              const float *gamma, const float *beta, double eps, void *y, int y_f16, int b, int t,
                              int h, int vocab);
/* bias_act: gelu != 0 for IMS_ACT_GELU. */
void imsi_cpu_bias_act(const void *x, const float *bias, void *y, int f16, int gelu, int m, int n);
/* add_layernorm: bias may be NULL. */
void imsi_cpu_add_layernorm(const void *x, const float *bias, const void *residual, const float *gamma,
                            const float *beta, double eps, void *y, int f16, int m, int h);
/* attention: h is the model width (qkv rows are 3h); no scores scratch. */
void imsi_cpu_attention(const void *qkv, const int32_t *lengths, void *ctx, int f16, int b, int t, int h, int heads);
/* pool_normalize: cls != 0 for IMS_POOLING_CLS. */
void imsi_cpu_pool_normalize(const void *x, const int32_t *lengths, float *y, int f16, int cls, int normalize, int b,
                             int t, int h);

#endif /* IMS_OPS_CPU_H */
