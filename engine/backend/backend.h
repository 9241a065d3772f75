/* backend.h: the interface every compute backend implements (cpu, cuda).
 *
 * Model graphs call the imsi_op_* functions below; they check shapes, dtypes and
 * memory placement once, here, then dispatch through the backend's op table. A
 * backend's op functions may assume their arguments were checked.
 *
 * Ordering: all work on a backend runs in submission order on one stream.
 * imsi_backend_upload/download return when the copy is complete; ops may return
 * before their results are ready (CUDA) until imsi_backend_synchronize().
 */
#ifndef IMS_BACKEND_H
#define IMS_BACKEND_H

#include "imgsearch.h"
#include "core/tensor.h"

/* A convolution's geometry and epilogue; the filter size comes from w's shape. */
typedef struct imsi_conv2d_params {
    int stride_h, stride_w, pad_h, pad_w;
    int relu;             /* 1: y = max(0, conv + bias) */
    int y_channel_offset; /* write channels [offset, offset + O) of y */
    ims_precision precision; /* CUDA math: fp32 (no TF32), tf32, fp16 (f16 tensors) */
} imsi_conv2d_params;

typedef enum imsi_pool_kind {
    IMS_POOL_MAX = 0,
    IMS_POOL_AVG = 1,
} imsi_pool_kind;

typedef struct imsi_pool2d_params {
    imsi_pool_kind kind;
    int k, stride, pad;    /* square window */
    int count_include_pad; /* average: divide by k * k (1) or by the window inside the image (0) */
    int y_channel_offset;  /* write channels [offset, offset + C) of y */
} imsi_pool2d_params;
typedef enum imsi_act { IMS_ACT_NONE = 0, IMS_ACT_GELU = 1 } imsi_act;           /* GELU: exact erf */
typedef enum imsi_pooling { IMS_POOLING_MEAN = 0, IMS_POOLING_CLS = 1 } imsi_pooling; /* sentence pooling */

typedef struct imsi_backend_ops {
    void (*destroy)(ims_backend *be);
    ims_status (*alloc)(ims_backend *be, size_t nbytes, void **out, ims_error *err);
    void (*dealloc)(ims_backend *be, void *ptr);
    ims_status (*upload)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
    ims_status (*download)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
    ims_status (*fill_bytes)(ims_backend *be, void *dst, int byte, size_t nbytes, ims_error *err);
    ims_status (*synchronize)(ims_backend *be, ims_error *err);
    /* Host memory that uploads read fast (pinned on CUDA), 64-byte aligned. */
    ims_status (*host_alloc)(ims_backend *be, size_t nbytes, void **out, ims_error *err);
    void (*host_free)(ims_backend *be, void *ptr);

    /* dst = src converted elementwise (f32 <-> f16, or a copy for equal dtypes). */
    ims_status (*convert)(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err);
    /* x: (N, D) f32. y: (N, D) f32 or f16 = x / ||x|| per row; norms: (N) f32.
     * A row whose norm is 0 or not finite gets y = 0 (the caller decides). */
    ims_status (*l2_normalize_rows)(ims_backend *be, const imsi_tensor *x, imsi_tensor *y,
                                    imsi_tensor *norms, ims_error *err);
    /* y (M, N) = x (M, K) . w (N, K)^T + bias (N), all f32; bias may be NULL. */
    ims_status (*linear)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w,
                         const imsi_tensor *bias, imsi_tensor *y, ims_error *err);

    /* A stopwatch (imgsearch.h): *timer is the backend's own state. */
    ims_status (*timer_create)(ims_backend *be, void **timer, ims_error *err);
    ims_status (*timer_mark)(ims_backend *be, void *timer, int stop, ims_error *err);
    ims_status (*timer_elapsed_ms)(ims_backend *be, void *timer, double *ms, ims_error *err);
    void (*timer_free)(ims_backend *be, void *timer);
    ims_status (*measure_peaks)(ims_backend *be, int quick, ims_backend_peaks *out, ims_error *err);
    /* y[..., off : off + O] (N, OH, OW, Ctot) = relu?(conv(x (N, H, W, C), w (O, KH, KW, C)) + bias (O));
     * x, w, y f32 (or all f16 on CUDA with precision fp16); bias f32 (f16 with f16 tensors). */
    ims_status (*conv2d)(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                         const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
    /* y[..., off : off + C] (N, OH, OW, Ctot) = pool(x (N, H, W, C)); f32 or f16 (both the same). */
    ims_status (*pool2d)(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                         ims_error *err);
    /* y (N, C) f32 = mean over H, W of x (N, H, W, C) f32 or f16. */
    ims_status (*global_avg_pool)(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err);
    /* y (N, H, W, 3) f32 or f16 = x (N, H, W, 3) u8 * scale[c] + shift[c]. */
    ims_status (*input_u8)(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                           imsi_tensor *y, ims_error *err);
    /* Exact top-k by inner product ("scores + select"). table (N, D) f32 or f16;
     * queries (B, D) f32; ids (B, kk) i32 row indices and scores (B, kk) f32 with
     * kk = min(k, N): each query's kk highest q . row (fp32 accumulation),
     * descending, equal scores by lower row index. path: an ims_knn_path, to
     * force a kernel (backends without that path use their own). */
    ims_status (*knn_select)(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k,
                             int path, imsi_tensor *ids, imsi_tensor *scores, ims_error *err);
    /* Activations are f32 or f16 (one dtype per call); biases, LayerNorm
     * parameters and embedding tables are f32; ids and lengths i32. */
    /* ids (B, T); word (V, H), pos (P >= T, H), type (Y, H) (row 0 used);
     * y (B, T, H) = LayerNorm(word[id] + pos[t] + type[0]; gamma, beta, eps). */
    ims_status (*embed_layernorm)(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                  const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                  const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err);
    /* x, y (M, N) (y may be x); bias (N): y = act(x + bias). */
    ims_status (*bias_act)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                           imsi_tensor *y, ims_error *err);
    /* x, residual, y (M, H) (y may be residual); bias (H) or NULL:
     * y = LayerNorm(x + bias + residual; gamma, beta, eps). */
    ims_status (*add_layernorm)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                double eps, imsi_tensor *y, ims_error *err);
    /* qkv (B, T, 3H), lengths (B) i32 on the backend, scores (B, heads, T, T)
     * scratch of the activation dtype (the CPU does not use it), ctx (B, T, H). */
    ims_status (*attention)(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                            imsi_tensor *scores, imsi_tensor *ctx, ims_error *err);
    /* x (B, T, H), lengths (B) -> y (B, H) f32: mean or CLS pooling, then L2
     * normalization if normalize. */
    ims_status (*pool_normalize)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                 imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err);
    /* y (M, N) = x (M, K) . w (N, K)^T, all f16, fp32 accumulation. */
    ims_status (*linear_f16)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w, imsi_tensor *y,
                             ims_error *err);
    /* Graph capture (CUDA; NULL on the CPU): the ops enqueued between
     * capture_begin and capture_end become a graph that graph_launch replays
     * on the same buffers. capture_end always ends the capture; on failure
     * *graph is NULL. No allocation, copy or synchronization in between. */
    ims_status (*capture_begin)(ims_backend *be, ims_error *err);
    ims_status (*capture_end)(ims_backend *be, void **graph, ims_error *err);
    ims_status (*graph_launch)(ims_backend *be, void *graph, ims_error *err);
    void (*graph_free)(ims_backend *be, void *graph);
    /* A host -> device copy that may run concurrently with work already
     * enqueued; work enqueued after it (ops, downloads) waits for it. The
     * caller guarantees no pending work still reads dst, and src (host_alloc
     * memory) stays unchanged until a later download or synchronize returns.
     * May be NULL (engine code then uses upload). */
    ims_status (*upload_async)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
} imsi_backend_ops;

struct ims_backend {
    const imsi_backend_ops *ops;
    ims_backend_info info;
    imsi_memory memory;     /* where this backend's tensors live */
    size_t bytes_in_use;   /* by imsi_backend_alloc, for memory estimates */
    size_t bytes_peak;
    void *impl;            /* the backend's private state */
};

/* Constructors of the two backends (backend/cpu.c, backend/cuda.c). */
ims_status imsi_backend_cpu_create(ims_backend **out, ims_error *err);
ims_status imsi_backend_cuda_create(int device, ims_backend **out, ims_error *err);

/* CUDA runtime, driver, cuBLAS and cuDNN versions, one "name version" per line
 * (backend/cuda.c; "not built" lines in a CPU-only build). Needs no GPU. */
void imsi_cuda_versions(char *buf, size_t size);

imsi_memory imsi_backend_memory(const ims_backend *be);

/* A tensor in the backend's memory (device memory for CUDA, host memory for
 * the CPU); imsi_tensor_free releases it (a wrapping tensor is only cleared). */
ims_status imsi_tensor_alloc(ims_backend *be, ims_dtype dtype, int ndim, const int64_t *shape,
                             imsi_tensor *out, ims_error *err);
void imsi_tensor_free(imsi_tensor *t);
ims_status imsi_backend_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err);
/* nbytes: the size given to imsi_backend_alloc (sizes are not tracked per pointer). */
void imsi_backend_dealloc(ims_backend *be, void *ptr, size_t nbytes);

/* Host buffers for uploads (the image loader's batches): page-locked on CUDA, so
 * copies from them run at full speed and may be asynchronous; plain aligned
 * memory on the CPU. Not counted in bytes_in_use (that is device memory).
 * host_free: NULL is fine; no copy from ptr may still be pending. */
ims_status imsi_backend_host_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err);
void imsi_backend_host_free(ims_backend *be, void *ptr);

/* Whole-tensor copies between host memory and a backend tensor of equal size. */
ims_status imsi_backend_upload(ims_backend *be, imsi_tensor *dst, const void *src, size_t nbytes,
                               ims_error *err);
ims_status imsi_backend_download(ims_backend *be, void *dst, size_t nbytes, const imsi_tensor *src,
                                 ims_error *err);
/* Fills every byte of t (tests poison outputs with 0xff: NaN in f32 and f16). */
ims_status imsi_backend_fill_bytes(ims_backend *be, imsi_tensor *t, int byte, ims_error *err);
ims_status imsi_backend_synchronize(ims_backend *be, ims_error *err);

/* The ops, with their checks. */
ims_status imsi_op_convert(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err);
ims_status imsi_op_l2_normalize_rows(ims_backend *be, const imsi_tensor *x, imsi_tensor *y,
                                     imsi_tensor *norms, ims_error *err);
ims_status imsi_op_linear(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w,
                          const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
ims_status imsi_op_knn_select(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k, int path,
                              imsi_tensor *ids, imsi_tensor *scores, ims_error *err);

/* Output size of a convolution or pool along one axis: (in + 2 pad - k) / stride + 1, or 0 if none. */
int64_t imsi_conv_out_size(int64_t in, int k, int stride, int pad);
ims_status imsi_op_conv2d(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                          const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
ims_status imsi_op_pool2d(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                          ims_error *err);
ims_status imsi_op_global_avg_pool(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err);
ims_status imsi_op_input_u8(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                            imsi_tensor *y, ims_error *err);
/* Graph capture (see the ops struct); IMS_ERR_UNSUPPORTED where the backend has none. */
int imsi_backend_has_graphs(const ims_backend *be);
ims_status imsi_backend_capture_begin(ims_backend *be, ims_error *err);
ims_status imsi_backend_capture_end(ims_backend *be, void **graph, ims_error *err);
ims_status imsi_backend_graph_launch(ims_backend *be, void *graph, ims_error *err);
void imsi_backend_graph_free(ims_backend *be, void *graph); /* NULL is fine */

/* The text encoder's ops (their contracts are in imsi_backend_ops above). */
ims_status imsi_op_embed_layernorm(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                   const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                   const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err);
ims_status imsi_op_bias_act(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                            imsi_tensor *y, ims_error *err);
ims_status imsi_op_add_layernorm(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                 const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                 double eps, imsi_tensor *y, ims_error *err);
ims_status imsi_op_attention(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                             imsi_tensor *scores, imsi_tensor *ctx, ims_error *err);
ims_status imsi_op_pool_normalize(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                  imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err);
ims_status imsi_op_linear_f16(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w, imsi_tensor *y,
                              ims_error *err);

#endif /* IMS_BACKEND_H */
