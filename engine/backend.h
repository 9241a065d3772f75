/* backend.h: the interface every compute backend implements (cpu, cuda).
 *
 * Model graphs call the ims_op_* functions below; they check shapes, dtypes and
 * memory placement once, here, then dispatch through the backend's op table. A
 * backend's op functions may assume their arguments were checked.
 *
 * Ordering: all work on a backend runs in submission order on one stream.
 * ims_backend_upload/download return when the copy is complete; ops may return
 * before their results are ready (CUDA) until ims_backend_synchronize().
 */
#ifndef IMS_BACKEND_H
#define IMS_BACKEND_H

#include "imgsearch.h"
#include "tensor.h"

typedef struct ims_backend_ops {
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
    ims_status (*convert)(ims_backend *be, const ims_tensor *src, ims_tensor *dst, ims_error *err);
    /* x: (N, D) f32. y: (N, D) f32 or f16 = x / ||x|| per row; norms: (N) f32.
     * A row whose norm is 0 or not finite gets y = 0 (the caller decides). */
    ims_status (*l2_normalize_rows)(ims_backend *be, const ims_tensor *x, ims_tensor *y,
                                    ims_tensor *norms, ims_error *err);
    /* y (M, N) = x (M, K) . w (N, K)^T + bias (N), all f32; bias may be NULL. */
    ims_status (*linear)(ims_backend *be, const ims_tensor *x, const ims_tensor *w,
                         const ims_tensor *bias, ims_tensor *y, ims_error *err);

    /* --- top-k search --- */
    /* Exact top-k by inner product ("scores + select"). table (N, D) f32 or f16;
     * queries (B, D) f32; ids (B, kk) i32 row indices and scores (B, kk) f32 with
     * kk = min(k, N): each query's kk highest q . row (fp32 accumulation),
     * descending, equal scores by lower row index. path: an ims_knn_path, to
     * force a kernel (backends without that path use their own). */
    ims_status (*knn_select)(ims_backend *be, const ims_tensor *table, const ims_tensor *queries, int k,
                             int path, ims_tensor *ids, ims_tensor *scores, ims_error *err);
    /* A host -> device copy that may run concurrently with work already
     * enqueued; work enqueued after it (ops, downloads) waits for it. The
     * caller guarantees no pending work still reads dst, and src (host_alloc
     * memory) stays unchanged until a later download or synchronize returns.
     * May be NULL (engine code then uses upload). */
    ims_status (*upload_async)(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err);
} ims_backend_ops;

struct ims_backend {
    const ims_backend_ops *ops;
    ims_backend_info info;
    ims_memory memory;     /* where this backend's tensors live */
    size_t bytes_in_use;   /* by ims_backend_alloc, for memory estimates */
    size_t bytes_peak;
    void *impl;            /* the backend's private state */
};

/* Constructors of the two backends (backend_cpu.c, backend_cuda.c). */
ims_status ims_backend_cpu_create(ims_backend **out, ims_error *err);
ims_status ims_backend_cuda_create(int device, ims_backend **out, ims_error *err);

/* CUDA runtime, driver, cuBLAS and cuDNN versions, one "name version" per line
 * (backend_cuda.c; "not built" lines in a CPU-only build). Needs no GPU. */
void ims_cuda_versions(char *buf, size_t size);

ims_memory ims_backend_memory(const ims_backend *be);
ims_status ims_backend_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err);
/* nbytes: the size given to ims_backend_alloc (sizes are not tracked per pointer). */
void ims_backend_dealloc(ims_backend *be, void *ptr, size_t nbytes);

/* Host buffers for uploads (the image loader's batches): page-locked on CUDA, so
 * copies from them run at full speed and may be asynchronous; plain aligned
 * memory on the CPU. Not counted in bytes_in_use (that is device memory).
 * host_free: NULL is fine; no copy from ptr may still be pending. */
ims_status ims_backend_host_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err);
void ims_backend_host_free(ims_backend *be, void *ptr);

/* Whole-tensor copies between host memory and a backend tensor of equal size. */
ims_status ims_backend_upload(ims_backend *be, ims_tensor *dst, const void *src, size_t nbytes,
                              ims_error *err);
ims_status ims_backend_download(ims_backend *be, void *dst, size_t nbytes, const ims_tensor *src,
                                ims_error *err);
/* Fills every byte of t (tests poison outputs with 0xff: NaN in f32 and f16). */
ims_status ims_backend_fill_bytes(ims_backend *be, ims_tensor *t, int byte, ims_error *err);
ims_status ims_backend_synchronize(ims_backend *be, ims_error *err);

/* The ops, with their checks. */
ims_status ims_op_convert(ims_backend *be, const ims_tensor *src, ims_tensor *dst, ims_error *err);
ims_status ims_op_l2_normalize_rows(ims_backend *be, const ims_tensor *x, ims_tensor *y,
                                    ims_tensor *norms, ims_error *err);
ims_status ims_op_linear(ims_backend *be, const ims_tensor *x, const ims_tensor *w,
                         const ims_tensor *bias, ims_tensor *y, ims_error *err);
/* --- top-k search --- */
ims_status ims_op_knn_select(ims_backend *be, const ims_tensor *table, const ims_tensor *queries, int k, int path,
                             ims_tensor *ids, ims_tensor *scores, ims_error *err);

#endif /* IMS_BACKEND_H */
