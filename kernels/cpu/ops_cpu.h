/* ops_cpu.h: the CPU reference implementation of every backend op.
 *
 * Raw pointers and sizes, row-major; shapes were checked by engine/backend/backend.c.
 * These are the references the GPU kernels are tested against, so precision
 * comes before speed where the two conflict (sums in double).
 */
#ifndef IMS_OPS_CPU_H
#define IMS_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

/* dst (n) = src (n), converted. */
void imsi_cpu_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void imsi_cpu_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/* x (n, d) f32; y (n, d) f32 (y_f32) or f16 (y_f16, the other NULL); norms (n).
 * Rows with a zero or non-finite norm get y = 0. */
void imsi_cpu_l2_normalize_rows(const float *x, float *y_f32, uint16_t *y_f16, float *norms, int n, int d);

/* y (m, n) = x (m, k) . w (n, k)^T + bias (n); bias may be NULL. OpenBLAS sgemm. */
void imsi_cpu_linear(const float *x, const float *w, const float *bias, float *y, int m, int n, int k);

/* One convolution's sizes: x (n, h, w, c), filter (o, kh, kw, c), output (n, oh, ow, o). */
typedef struct cpu_conv2d_shape {
    int n, h, w, c, o, kh, kw, sh, sw, ph, pw, oh, ow;
} cpu_conv2d_shape;

/* 1 if the convolution is a plain GEMM on NHWC rows (no im2col workspace). */
int imsi_cpu_conv2d_is_gemm(int kh, int kw, int sh, int sw, int ph, int pw);

/* y[..., off : off + o] (n, oh, ow, y_channels) = relu?(conv(x, w) + bias); bias may
 * be NULL. col: (oh * ow, kh * kw * c) workspace, unused (NULL) for GEMM shapes. */
void imsi_cpu_conv2d_nhwc(const cpu_conv2d_shape *s, const float *x, const float *w, const float *bias, int relu,
                          float *y, int y_channels, int y_offset, float *col);

/* x (n, h, w, c) -> y[..., off : off + c] (n, oh, ow, y_channels); max != 0: max pool. */
void imsi_cpu_pool2d_nhwc(const float *x, int n, int h, int w, int c, int max, int k, int stride, int pad,
                          int count_include_pad, float *y, int oh, int ow, int y_channels, int y_offset);

/* x (n, hw, c) -> y (n, c): the mean over hw, summed in double. */
void imsi_cpu_global_avg_pool_nhwc(const float *x, int n, int hw, int c, float *y);

/* y (pixels, 3) = x (pixels, 3) * scale[c] + shift[c]. */
void imsi_cpu_input_u8(const uint8_t *x, size_t pixels, const float scale[3], const float shift[3], float *y);
/* table (n, d): f32 (table_f32) or f16 (table_f16, the other NULL); queries (b, d);
 * ids, scores (b, kk), kk = min(k, n): each query's kk highest dot products
 * (fp32 sgemm), descending, equal scores by lower row index; a NaN score counts
 * as -inf. Blocked over rows; f16 blocks are converted to f32 first.
 * Returns 0, or -1 if its scratch memory (about (b * (k + 1M / b) + 16K * d) * 4
 * bytes) cannot be allocated. */
int imsi_cpu_knn_select(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                        int b, int k, int32_t *ids, float *scores);
/* Below this many elements of work an op runs on one thread: a parallel region
 * costs more than it saves on a short sentence (batch 1), and much more when
 * the cores are shared (a barrier waits for a descheduled thread). */
#define CPU_PARALLEL_MIN (1 << 18)
/* Activations (x, y, qkv, ctx, residual) are f32, or f16 where the flag f16 is
 * set; biases, LayerNorm parameters and embedding tables are f32. */

/* One row's LayerNorm: y (H) = (row - mean) / sqrt(var + eps) * gamma + beta,
 * statistics in double over row (H); y f32, or f16 when y_f16. */
void imsi_cpu_layernorm_row(const double *row, int h, double eps, const float *gamma, const float *beta, void *y,
                            int y_f16);
/* ids (b, t); word (vocab, h), pos (>= t, h), type0 (h), gamma, beta (h);
 * y (b, t, h) = LayerNorm(word[id] + pos[t] + type0). */
void imsi_cpu_embed_layernorm(const int32_t *ids, const float *word, const float *pos, const float *type0,
                              const float *gamma, const float *beta, double eps, void *y, int y_f16, int b, int t,
                              int h, int vocab);
/* x, y (m, n); bias (n): y = x + bias, or GELU(x + bias) (exact erf) if gelu. */
void imsi_cpu_bias_act(const void *x, const float *bias, void *y, int f16, int gelu, int m, int n);
/* x, residual, y (m, h); bias (h) or NULL; y = LayerNorm(x + bias + residual). */
void imsi_cpu_add_layernorm(const void *x, const float *bias, const void *residual, const float *gamma,
                            const float *beta, double eps, void *y, int f16, int m, int h);
/* qkv (b, t, 3h), lengths (b), ctx (b, t, h): masked multi-head attention. */
void imsi_cpu_attention(const void *qkv, const int32_t *lengths, void *ctx, int f16, int b, int t, int h, int heads);
/* x (b, t, h), lengths (b) -> y (b, h) f32: mean (or CLS) pooling, then L2
 * normalization if normalize. */
void imsi_cpu_pool_normalize(const void *x, const int32_t *lengths, float *y, int f16, int cls, int normalize, int b,
                             int t, int h);
/* y (m, n) = x (m, k) . w (n, k)^T, all f16, f32 sums; -1 if out of memory. */
int imsi_cpu_linear_f16(const uint16_t *x, const uint16_t *w, uint16_t *y, int m, int n, int k);

#endif /* IMS_OPS_CPU_H */
