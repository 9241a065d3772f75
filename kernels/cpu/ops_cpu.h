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
 *
 * Scratch memory: a kernel never allocates. One that needs memory says how
 * much (its *_scratch_bytes function, for `threads` threads where it runs
 * in parallel) and takes it as `scratch` (64-byte aligned, NULL when it needs
 * none); the CPU backend serves it from a grow-only arena, so an op either
 * gets its scratch or fails with IMS_ERR_NOMEM before any work. A parallel
 * region uses at most `threads` threads (cpu_threads() when the caller sized
 * the scratch), thread i the i-th slice.
 */
#ifndef IMS_OPS_CPU_H
#define IMS_OPS_CPU_H

#include "imgsearch.h"

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The threads a parallel region may use, and this thread's index in one. */
static inline int cpu_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int cpu_thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Bytes of `count` slices of `bytes` each, a slice rounded up to 64 bytes (no
 * two threads write one cache line). */
static inline size_t cpu_slices_bytes(size_t bytes, int count) { return (bytes + 63) / 64 * 64 * (size_t)count; }

/* convert: one direction per function. */
void imsi_cpu_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void imsi_cpu_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/* l2_normalize_rows: y into y_f32 or y_f16 (the other NULL). */
void imsi_cpu_l2_normalize_rows(const float *x, float *y_f32, uint16_t *y_f16, float *norms, int n, int d);

/* linear: x, w, y f32, or f16 when f16 is set; bias f32 or NULL. The f16
 * path's scratch holds f32 copies of x, w and y. */
size_t imsi_cpu_linear_scratch_bytes(int f16, int m, int n, int k);
void imsi_cpu_linear(const void *x, const void *w, const float *bias, void *y, int f16, int m, int n, int k,
                     void *scratch);

/* One convolution's sizes: x (n, h, w, c), filter (o, kh, kw, c), output (n, oh, ow, o). */
typedef struct imsi_cpu_conv2d_shape {
    int n, h, w, c, o, kh, kw, sh, sw, ph, pw, oh, ow;
} imsi_cpu_conv2d_shape;

/* conv2d (fp32): y has y_channels channels, the output goes to [y_offset, y_offset + o).
 * scratch: one image's im2col rows (oh * ow, kh * kw * c); none for GEMM shapes. */
size_t imsi_cpu_conv2d_scratch_bytes(const imsi_cpu_conv2d_shape *s);
void imsi_cpu_conv2d_nhwc(const imsi_cpu_conv2d_shape *s, const float *x, const float *w, const float *bias, int relu,
                          float *y, int y_channels, int y_offset, void *scratch);

/* conv2d through oneDNN (conv2d_onednn.c): cached primitives, the filter
 * reordered once. IMS_ERR_UNSUPPORTED when this build has no oneDNN or oneDNN
 * has only its reference kernel for the shape: use imsi_cpu_conv2d_nhwc.
 * scratch: imsi_onednn_conv2d_scratch_bytes (a dense output when y_channels > o). */
typedef struct imsi_onednn imsi_onednn;
ims_status imsi_onednn_create(imsi_onednn **out, ims_error *err);
void imsi_onednn_free(imsi_onednn *d);
/* Drops the cached primitives whose filter or bias is ptr (the memory is being freed). */
void imsi_onednn_forget(imsi_onednn *d, const void *ptr);
size_t imsi_onednn_conv2d_scratch_bytes(const imsi_cpu_conv2d_shape *s, int y_channels);
ims_status imsi_onednn_conv2d_nhwc(imsi_onednn *d, const imsi_cpu_conv2d_shape *s, const float *x, const float *w,
                                   const float *bias, int relu, float *y, int y_channels, int y_offset, void *scratch,
                                   ims_error *err);
/* "2.6.3 (cpu runtime OpenMP)" into buf; 0 in a build without oneDNN. */
int imsi_onednn_version(char *buf, size_t size);

/* pool2d (f32): max != 0 for a max pool; y has y_channels channels, the output goes
 * to [y_offset, y_offset + c). */
void imsi_cpu_pool2d_nhwc(const float *x, int n, int h, int w, int c, int max, int k, int stride, int pad,
                          int count_include_pad, float *y, int oh, int ow, int y_channels, int y_offset);

/* global_avg_pool (f32): x (n, hw, c). */
void imsi_cpu_global_avg_pool_nhwc(const float *x, int n, int hw, int c, float *y);

/* input_u8 (f32 output): pixels = N * H * W. */
void imsi_cpu_input_u8(const uint8_t *x, size_t pixels, const float scale[3], const float shift[3], float *y);

/* knn_select: the table in table_f32 or table_f16 (the other NULL). Blocked
 * over rows (fp32 sgemm; f16 blocks converted to f32 first); the scratch
 * (about (b * (k + 1M / b) + 16K * d) * 4 bytes) holds a score block, an f32
 * row block and the heaps. */
size_t imsi_cpu_knn_scratch_bytes(int f16, int64_t n, int d, int b, int k);
void imsi_cpu_knn_select(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                         int b, int k, int32_t *ids, float *scores, void *scratch);

/* knn_rescore (backend.h): cand/cand_scores (b, c), margin (b) -> ids/scores
 * (b, min(k, c)), ok (b); scratch: imsi_cpu_knn_rescore_scratch_bytes(c). */
size_t imsi_cpu_knn_rescore_scratch_bytes(int c);
void imsi_cpu_knn_rescore(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                          int b, const int32_t *cand, const float *cand_scores, int c, const float *margin, int k,
                          int32_t *ids, float *scores, int32_t *ok, void *scratch);

/* Below this many elements of work an op runs on one thread: a parallel region
 * costs more than it saves on a short sentence (batch 1), and much more when
 * the cores are shared (a barrier waits for a descheduled thread). */
#define CPU_PARALLEL_MIN (1 << 18)

/* One row's LayerNorm (backend.h): y (h) from row (h), statistics in double;
 * y f32, or f16 when y_f16. Shared by embed_layernorm and add_layernorm. */
void imsi_cpu_layernorm_row(const double *row, int h, double eps, const float *gamma, const float *beta, void *y,
                            int y_f16);
/* embed_layernorm: type0 is row 0 of the type table; scratch: a row of h
 * doubles per thread. Returns -1, or (writing nothing) the flat index
 * (b * t + position) of the first id outside [0, vocab). */
size_t imsi_cpu_embed_layernorm_scratch_bytes(int h, int threads);
int64_t imsi_cpu_embed_layernorm(const int32_t *ids, const float *word, const float *pos, const float *type0,
                                 const float *gamma, const float *beta, double eps, void *y, int y_f16, int b, int t,
                                 int h, int vocab, void *scratch, int threads);
/* bias_act: gelu != 0 for IMS_ACT_GELU. The _fast variants (f32 only, one
 * thread, vectorized; x and y may alias as in the op) are the CPU encoder's
 * default; the backend runs the strict ones instead when told to
 * (imsi_backend_cpu_set_strict), and for f16. */
void imsi_cpu_bias_act(const void *x, const float *bias, void *y, int f16, int gelu, int m, int n);
void imsi_cpu_bias_act_fast(const float *x, const float *bias, float *y, int gelu, int m, int n);
/* add_layernorm: bias may be NULL; scratch: a row of h doubles per thread. */
size_t imsi_cpu_add_layernorm_scratch_bytes(int h, int threads);
void imsi_cpu_add_layernorm(const void *x, const float *bias, const void *residual, const float *gamma,
                            const float *beta, double eps, void *y, int f16, int m, int h, void *scratch,
                            int threads);
/* attention: h is the model width (qkv rows are 3h); the op's scores tensor
 * is not used; scratch: one head's q, k, v (t, h / heads) and a row of
 * scores (t) per thread. */
size_t imsi_cpu_attention_scratch_bytes(int t, int h, int heads, int threads);
void imsi_cpu_attention(const void *qkv, const int32_t *lengths, void *ctx, int f16, int b, int t, int h, int heads,
                        void *scratch, int threads);
size_t imsi_cpu_attention_fast_scratch_bytes(int t, int h, int heads);
void imsi_cpu_attention_fast(const float *qkv, const int32_t *lengths, float *ctx, int b, int t, int h, int heads,
                             void *scratch);
/* pool_normalize: cls != 0 for IMS_POOLING_CLS; scratch: h doubles per thread. */
size_t imsi_cpu_pool_normalize_scratch_bytes(int h, int threads);
void imsi_cpu_pool_normalize(const void *x, const int32_t *lengths, float *y, int f16, int cls, int normalize, int b,
                             int t, int h, void *scratch, int threads);

#endif /* IMS_OPS_CPU_H */
