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
    ims_precision precision; /* fp32 (no TF32), tf32 or fp16 (f16 tensors): see imsi_op_conv2d */
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

/* A backend's slots, in two groups. Required: memory, copies, synchronize and
 * every compute op; backend creation (ims_backend_create) refuses a table
 * with an empty one, naming it. Optional: NULL where the backend has none
 * (the callers below then say IMS_ERR_UNSUPPORTED, or fall back where said);
 * the timer slots and the graph slots each come as a whole set.
 *
 * Compute slots implement the imsi_op_* of the same name below, whose
 * contracts are written there, once; backend.c checks every argument before
 * it calls a slot, so a slot may assume checked arguments. */
typedef struct imsi_backend_ops {
    /* ---- Required ---- */
    void (*destroy)(ims_backend *be);
    ims_status (*alloc)(ims_backend *be, size_t nbytes, void **out, ims_error *err);
    void (*dealloc)(ims_backend *be, void *ptr);
    /* Host memory that uploads read fast (pinned on CUDA), 64-byte aligned. */
    ims_status (*host_alloc)(ims_backend *be, size_t nbytes, void **out, ims_error *err);
    void (*host_free)(ims_backend *be, void *ptr);
    ims_status (*upload)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
    ims_status (*download)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
    ims_status (*fill_bytes)(ims_backend *be, void *dst, int byte, size_t nbytes, ims_error *err);
    ims_status (*synchronize)(ims_backend *be, ims_error *err);

    ims_status (*convert)(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err);
    ims_status (*l2_normalize_rows)(ims_backend *be, const imsi_tensor *x, imsi_tensor *y,
                                    imsi_tensor *norms, ims_error *err);
    ims_status (*linear)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w,
                         const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
    /* path: an ims_knn_path, to force a kernel (backends without that path use their own). */
    ims_status (*knn_select)(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k,
                             int path, imsi_tensor *ids, imsi_tensor *scores, ims_error *err);
    ims_status (*conv2d)(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                         const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
    ims_status (*pool2d)(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                         ims_error *err);
    ims_status (*global_avg_pool)(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err);
    ims_status (*input_u8)(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                           imsi_tensor *y, ims_error *err);
    ims_status (*embed_layernorm)(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                  const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                  const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err);
    ims_status (*bias_act)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                           imsi_tensor *y, ims_error *err);
    ims_status (*add_layernorm)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                double eps, imsi_tensor *y, ims_error *err);
    ims_status (*attention)(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                            imsi_tensor *scores, imsi_tensor *ctx, ims_error *err);
    ims_status (*pool_normalize)(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                 imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err);

    /* ---- Optional (timer_create must stay the first of them: create.c counts the required slots by it) ---- */
    /* A stopwatch (imgsearch.h): *timer is the backend's own state. */
    ims_status (*timer_create)(ims_backend *be, void **timer, ims_error *err);
    ims_status (*timer_mark)(ims_backend *be, void *timer, int stop, ims_error *err);
    ims_status (*timer_elapsed_ms)(ims_backend *be, void *timer, double *ms, ims_error *err);
    void (*timer_free)(ims_backend *be, void *timer);
    /* The copy and GEMM ceilings of ims_backend_measure_peaks. */
    ims_status (*measure_peaks)(ims_backend *be, int quick, ims_backend_peaks *out, ims_error *err);
    /* Graph capture: the ops enqueued between capture_begin and capture_end
     * become a graph that graph_launch replays on the same buffers.
     * capture_end always ends the capture; on failure *graph is NULL. No
     * allocation, copy or synchronization in between. */
    ims_status (*capture_begin)(ims_backend *be, ims_error *err);
    ims_status (*capture_end)(ims_backend *be, void **graph, ims_error *err);
    ims_status (*graph_launch)(ims_backend *be, void *graph, ims_error *err);
    void (*graph_free)(ims_backend *be, void *graph);
    /* A host -> device copy that may run concurrently with work already
     * enqueued; work enqueued after it (ops, downloads) waits for it. The
     * caller guarantees no pending work still reads dst, and src (host_alloc
     * memory) stays unchanged until a later download or synchronize returns.
     * Where NULL, engine code uses upload. */
    ims_status (*upload_async)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
    /* The exact pass of the f16 prefilter (imsi_op_knn_rescore); where NULL,
     * engine/index/knn.c searches f16 tables with the exact paths only. */
    ims_status (*knn_rescore)(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries,
                              const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                              int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err);
} imsi_backend_ops;

struct ims_backend {
    const imsi_backend_ops *ops;
    ims_backend_info info;
    imsi_memory memory;     /* where this backend's tensors live */
    size_t bytes_in_use;   /* by imsi_backend_alloc, for memory estimates */
    size_t bytes_peak;
    void *impl;            /* the backend's private state */
};

/* Constructors of the two backends (backend/cpu.c, backend/cuda.c); use
 * ims_backend_create, which also checks the table. */
ims_status imsi_backend_cpu_create(ims_backend **out, ims_error *err);
ims_status imsi_backend_cuda_create(int device, ims_backend **out, ims_error *err);
/* Tests, CPU backend only: scratch requests above max_bytes fail as if out of
 * memory (0: no limit), to check that ops report it. */
void imsi_backend_cpu_limit_scratch(ims_backend *be, size_t max_bytes);
/* CPU backend only: strict (1) runs every op on the reference kernels (libm,
 * double statistics, OpenMP regions, convolutions by im2col + sgemm), as tests
 * compare against; 0 (the default) lets f32 bias_act and attention take their
 * fast kernels, the BERT row ops run on the calling thread beside OpenBLAS's
 * and convolutions run on oneDNN (kernels/cpu). IMS_CPU_STRICT=1 in the
 * environment makes every CPU backend strict from its creation. */
void imsi_backend_cpu_set_strict(ims_backend *be, int strict);
/* The last step of creating a backend (create.c): checks its table (every
 * required slot set; timers and graph slots each all or none) and hands it
 * out in *out, or frees it and returns IMS_ERR_UNSUPPORTED naming the first
 * missing slot. Exposed for the test that feeds it an incomplete table. */
ims_status imsi_backend_adopt(ims_backend *be, ims_backend **out, ims_error *err);

/* CUDA runtime, driver, cuBLAS and cuDNN versions as ims_library_version_list
 * entries (backend/cuda.c; one "cuda": "not built" in a CPU-only build); fills
 * at most max, returns the count. Needs no GPU. */
size_t imsi_cuda_version_list(ims_library_version *out, size_t max);

/* The PCI bus id of a CUDA backend's GPU ("0000:65:00.0"): 0, or -1 (a
 * CPU-only build, or the runtime did not say). */
int imsi_cuda_pci_bus_id(const ims_backend *be, char *buf, int size);

/* Clocks (backend/nvml.c): every field -1 and source "unknown: why". */
void imsi_clocks_unknown(ims_device_clocks *out, const char *why);
/* Reads pci_bus_id's clocks through the NVML library `library` (a dlopen
 * name or path: tests load a stand-in); unknown fields stay -1. */
void imsi_nvml_clocks(const char *library, const char *pci_bus_id, ims_device_clocks *out);

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

/* ---- The ops -------------------------------------------------------------------
 *
 * Each op's contract is written here, once; the CPU reference
 * (kernels/cpu/ops_cpu.h) and the CUDA entries (kernels/cuda/ops_cuda.h)
 * implement it and point back here. Conventions for every op:
 * - tensors are row-major views in the backend's memory (images NHWC); every
 *   count fits an int;
 * - activations are f32 or f16, one dtype per call; f16 works on every
 *   backend for linear and the text encoder's ops, on CUDA only for the
 *   image ops (conv2d, pool2d, global_avg_pool, input_u8). Biases, LayerNorm
 *   parameters and embedding tables are f32 unless said otherwise; ids and
 *   lengths i32;
 * - an output is written in full (or exactly the channel slice named) and
 *   aliases no input unless the op says it may;
 * - a bad argument is IMS_ERR_ARGUMENT (or IMS_ERR_UNSUPPORTED for a dtype or
 *   size a backend lacks) with a message naming the tensor and both shapes,
 *   before any work; a backend that cannot get its scratch memory returns
 *   IMS_ERR_NOMEM.
 */

/* dst = src elementwise, equal element counts (shapes may differ): f32 -> f16
 * rounds to nearest even (the bits of ims_f32_to_f16), f16 -> f32 is exact;
 * between equal dtypes (any dtype) a copy. dst may be src. */
ims_status imsi_op_convert(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err);
/* x (N, D) f32 -> y (N, D) f32 or f16 = x / ||x|| per row, norms (N) f32 = ||x||
 * (sum of squares in double). A row whose norm is 0 or not finite gets y = 0
 * and its norm as computed (0, NaN or Inf), so the caller can name it. */
ims_status imsi_op_l2_normalize_rows(ims_backend *be, const imsi_tensor *x, imsi_tensor *y,
                                     imsi_tensor *norms, ims_error *err);
/* y (M, N) = x (M, K) . w (N, K)^T + bias (N); bias may be NULL. The dtype
 * comes from the tensors: x, w and y all f32 (strict fp32 math, no TF32) or
 * all f16 (the exact products of halves summed in fp32). The bias is always
 * f32 (Inception's classifier is f32 in every precision; the text encoder adds
 * its biases in bias_act and add_layernorm): it is added in fp32 to the fp32
 * sum, and the result is rounded once to y's dtype. */
ims_status imsi_op_linear(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w,
                          const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
/* Each query's kk = min(k, N) highest inner products with the table, exactly:
 * table (N, D) f32 or f16, queries (B, D) f32, k in 1..IMS_KNN_MAX_K ->
 * ids (B, kk) i32 row indices and scores (B, kk) f32 (fp32 accumulation),
 * descending, equal scores by lower row index, a NaN score ranked as -inf.
 * path: an ims_knn_path to force a kernel (a backend without that path uses
 * its own); every path ranks exact fp32 dot products of the stored values
 * (IMS_KNN_PATH_GEMM_F16: with the queries rounded to f16). */
ims_status imsi_op_knn_select(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k, int path,
                              imsi_tensor *ids, imsi_tensor *scores, ims_error *err);

/* The exact pass of the f16 prefilter: table (N, D) f16 or f32, queries (B, D)
 * f32, cand (B, C) i32 rows with their approximate scores cand_scores (B, C)
 * f32, best first (knn_select with IMS_KNN_PATH_GEMM_F16, k = C), margin (B)
 * f32 the bound on |approximate - exact| per query. Per query every candidate
 * is rescored (the fp64 dot product of the query and the stored row, rounded
 * once to f32) and the kk = min(k, C) best, descending, equal scores by lower
 * row, go to ids (B, kk) i32 and scores (B, kk) f32; ok (B) i32 is
 * imsi_knn_prefilter_holds (kernels/cuda/knn_tile.h): 1 where they are
 * provably the exact answer, 0 where the query must be searched exactly.
 * IMS_ERR_UNSUPPORTED on backends without it. */
ims_status imsi_op_knn_rescore(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries,
                               const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                               int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err);

/* Output size of a convolution or pool along one axis: (in + 2 pad - k) / stride + 1, or 0 if none. */
int64_t imsi_conv_out_size(int64_t in, int k, int stride, int pad);
/* Channels [off, off + O) of y (N, OH, OW, Ctot) = relu?(conv(x (N, H, W, C),
 * w (O, KH, KW, C)) + bias (O)), off = p->y_channel_offset, OH and OW from
 * imsi_conv_out_size (cross-correlation, zero padding); y's other channels
 * are left untouched and y must not overlap x. Precision fp32: x, w, bias, y
 * f32, strict fp32 math; tf32 (CUDA): f32 tensors, TF32 inputs, f32
 * accumulation; fp16 (CUDA): x, w, bias, y f16, f32 accumulation. bias is
 * required (Inception's folded BatchNorm always has one). */
ims_status imsi_op_conv2d(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                          const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
/* Channels [off, off + C) of y (N, OH, OW, Ctot) = pool(x (N, H, W, C)) over a
 * square k x k window (pad <= k / 2; floor sizes, PyTorch's ceil_mode=False);
 * x and y of one dtype; other channels untouched. Max ignores padded
 * positions; average divides by k * k (count_include_pad) or by the window's
 * positions inside the image, summing in at least f32. */
ims_status imsi_op_pool2d(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                          ims_error *err);
/* y (N, C) f32 = the mean over H and W of x (N, H, W, C), summed in double. */
ims_status imsi_op_global_avg_pool(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err);
/* y (N, H, W, 3) = x (N, H, W, 3) u8 * scale[c] + shift[c]: one f32 multiply
 * then one f32 add (no fused multiply-add), so f32 results are the same bits
 * on every backend; an f16 y is that value rounded. */
ims_status imsi_op_input_u8(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                            imsi_tensor *y, ims_error *err);

/* The text encoder's ops. LayerNorm is (v - mean) / sqrt(var + eps) * gamma +
 * beta over a row of H, statistics in double, eps in (0, 1). */

/* ids (B, T); word (V, H), pos (P >= T, H), type (Y, H) (row 0 used), gamma,
 * beta (H); y (B, T, H) = LayerNorm(word[id] + pos[t] + type[0]), token t of
 * a sequence at position t. An id outside [0, V) is IMS_ERR_ARGUMENT naming
 * the id, its sequence, its position and V (y is then unspecified); to know,
 * the CUDA backend waits for the kernel, so this op is not graph-capturable. */
ims_status imsi_op_embed_layernorm(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                   const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                   const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err);
/* x, y (M, N) of one dtype, y may be x; bias (N): y = x + bias, or (GELU)
 * GELU(x + bias) with the exact erf, computed in f32 at least. */
ims_status imsi_op_bias_act(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                            imsi_tensor *y, ims_error *err);
/* x, residual, y (M, H) of one dtype, y may be residual (not x); bias (H) or
 * NULL: y = LayerNorm(x + bias + residual). */
ims_status imsi_op_add_layernorm(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                 const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                 double eps, imsi_tensor *y, ims_error *err);
/* Masked multi-head self-attention. qkv (B, T, 3H): per token the query, key
 * and value (H each), each cut into `heads` heads of D = H / heads columns;
 * lengths (B): tokens [0, len) of a sequence are real (len clamped to
 * [0, T]); ctx (B, T, H), qkv's dtype = per head softmax(Q K^T / sqrt(D) over
 * the real keys) V, fp32 accumulation. Every query row is computed (padding
 * rows too, over the real keys); a sequence of length 0 gets ctx = 0. scores
 * (B, heads, T, T), qkv's dtype, is scratch the op may use (the CPU does
 * not); its contents afterwards are unspecified. */
ims_status imsi_op_attention(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                             imsi_tensor *scores, imsi_tensor *ctx, ims_error *err);
/* x (B, T, H), lengths (B) (clamped to [1, T]) -> y (B, H) f32: the mean of
 * tokens [0, len) (MEAN) or token 0 (CLS), then divided by its L2 norm if
 * normalize (a zero or non-finite vector becomes 0); sums in double. */
ims_status imsi_op_pool_normalize(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                  imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err);

/* Graph capture (the optional slots above); IMS_ERR_UNSUPPORTED where the backend has none. */
int imsi_backend_has_graphs(const ims_backend *be);
ims_status imsi_backend_capture_begin(ims_backend *be, ims_error *err);
ims_status imsi_backend_capture_end(ims_backend *be, void **graph, ims_error *err);
ims_status imsi_backend_graph_launch(ims_backend *be, void *graph, ims_error *err);
void imsi_backend_graph_free(ims_backend *be, void *graph); /* NULL is fine */

#endif /* IMS_BACKEND_H */
