/* backend/cuda.c: the CUDA backend: device memory, one stream, cuBLAS, cuDNN.
 *
 * Every op is enqueued on the backend's own non-blocking stream, so work runs
 * in submission order (backend.h) and does not serialize with the legacy
 * default stream. Ops return once enqueued; upload/download return when the
 * copy is done; synchronize waits for the stream. This file keeps memory,
 * streams, handles, timers and graph capture; the ops' algorithms are in
 * kernels/cuda/<op>.c (kernels/cuda/ops_cuda.h), which run on the context
 * (kernels/cuda/cuda_ctx.h: stream, handles, scratch) this file owns. Every
 * CUDA, cuBLAS and cuDNN call goes through the checks of cuda_check.h.
 *
 * Each entry point first makes the backend's GPU current (cudaSetDevice is per
 * host thread and cheap when nothing changes), so a backend works from any
 * thread and beside a backend on another GPU.
 *
 * Tensors must be freed before their backend (imsi_tensor_free calls back into it).
 */
#include "backend/backend.h"

#include "kernels/cuda/ops_cuda.h"
#include "backend/cuda_check.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cuda_state {
    int device;
    imsi_cuda_ctx ctx;        /* the stream, handles (NULL until created), conv plans, scratch */
    cudaStream_t copy_stream; /* upload_async; NULL until first used */
    cudaEvent_t copy_done;
    void *cublas_workspace;   /* cuBLAS's fixed workspace (cublasSetWorkspace) */
} cuda_state;

/* A captured graph and the scratch generation it was captured with. */
typedef struct cuda_graph {
    cudaGraphExec_t exec;
    unsigned long generation;
} cuda_graph;

/* backend/cuda_status.h reads these numbers: they must be the headers'. */
_Static_assert(IMSI_CUDA_ERROR_MEMORY_ALLOCATION == (int)cudaErrorMemoryAllocation &&
                   IMSI_CUDA_ERROR_INSUFFICIENT_DRIVER == (int)cudaErrorInsufficientDriver &&
                   IMSI_CUDA_ERROR_NO_DEVICE == (int)cudaErrorNoDevice,
               "cudaError_t numbers");
_Static_assert(IMSI_CUBLAS_STATUS_ALLOC_FAILED == (int)CUBLAS_STATUS_ALLOC_FAILED, "cublasStatus_t numbers");
_Static_assert(IMSI_CUDNN_STATUS_HOST_ALLOCATION_FAILED == (int)CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED &&
                   IMSI_CUDNN_STATUS_DEVICE_ALLOCATION_FAILED == (int)CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED,
               "cudnnStatus_t numbers");

static cuda_state *cuda_state_of(const ims_backend *be) { return (cuda_state *)be->impl; }

static void cuda_destroy(ims_backend *be);

imsi_cuda_hooks *imsi_backend_cuda_hooks(ims_backend *be)
{
    return be && be->ops && be->ops->destroy == cuda_destroy ? &cuda_state_of(be)->ctx.hooks : NULL;
}

/* Makes the backend's GPU current for this host thread. */
static ims_status cuda_use_device(const cuda_state *st, ims_error *err)
{
    IMS_CUDA_CHECK(err, cudaSetDevice(st->device));
    return IMS_OK;
}

/* ---- Versions (no GPU needed) ------------------------------------------------- */

/* cuBLAS's version as major * 10000 + minor * 100 + patch (as CUBLAS_VERSION),
 * from library properties, which need no handle and no GPU; 0 if unknown. */
static int cublas_version_number(void)
{
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
        return 0;
    return major * 10000 + minor * 100 + patch;
}

/* CUDA's encoding (1000 * major + 10 * minor) as "13.0", or `absent` for 0. */
static void cuda_version_text(int version, const char *absent, char *buf, size_t size)
{
    if (version <= 0)
        snprintf(buf, size, "%s", absent);
    else
        snprintf(buf, size, "%d.%d", version / 1000, version % 1000 / 10);
}

/* cuBLAS's and cuDNN's encoding (10000 * major + 100 * minor + patch) as "9.19.0". */
static void library_version_text(long long version, char *buf, size_t size)
{
    if (version <= 0)
        snprintf(buf, size, "unknown");
    else
        snprintf(buf, size, "%lld.%lld.%lld", version / 10000, version % 10000 / 100, version % 100);
}

size_t imsi_cuda_version_list(ims_library_version *out, size_t max)
{
    /* No check macros here: this runs without a GPU (and without a driver) and
     * reports what it finds; a failed query gives "none" or "unknown". Failed
     * runtime calls also set the thread's last error, which is cleared so the
     * next kernel launch check does not report it. */
    int runtime = 0, driver = 0;
    if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
        (void)cudaGetLastError();
        runtime = 0;
    }
    if (cudaDriverGetVersion(&driver) != cudaSuccess) {
        (void)cudaGetLastError();
        driver = 0;
    }
    static const char *const names[4] = {"cuda_runtime", "cuda_driver", "cublas", "cudnn"};
    ims_library_version v[4];
    for (int i = 0; i < 4; i++)
        v[i].name = names[i];
    cuda_version_text(runtime, "unknown", v[0].version, sizeof v[0].version);
    cuda_version_text(driver, "none", v[1].version, sizeof v[1].version);
    library_version_text(cublas_version_number(), v[2].version, sizeof v[2].version);
    library_version_text((long long)cudnnGetVersion(), v[3].version, sizeof v[3].version);
    for (size_t i = 0; i < 4 && i < max; i++)
        out[i] = v[i];
    return 4;
}

int imsi_cuda_pci_bus_id(const ims_backend *be, char *buf, int size)
{
    if (cudaDeviceGetPCIBusId(buf, size, cuda_state_of(be)->device) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    return 0;
}

int ims_cuda_compiled(void) { return 1; }

ims_status ims_cuda_device_count(int *count, ims_error *err)
{
    *count = 0;
    int n = 0;
    /* Not IMS_CUDA_CHECK: every failure here means "no usable GPU", reported
     * with the driver's reason in the form the CLI shows. */
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ims_error_set(err, IMS_ERR_NO_DEVICE, "no CUDA device: %s (%s)", cudaGetErrorName(e),
                             cudaGetErrorString(e));
    }
    if (n <= 0)
        return ims_error_set(err, IMS_ERR_NO_DEVICE, "no CUDA device: the driver reports 0 devices");
    *count = n;
    return IMS_OK;
}

/* ---- Memory and copies ------------------------------------------------------- */

static void cuda_destroy(ims_backend *be)
{
    cuda_state *st = cuda_state_of(be);
    if (st) {
        /* destroy cannot report failures; a failed call leaves nothing to undo.
         * A stream destroyed with work pending is released once that work ends. */
        int ok = cudaSetDevice(st->device) == cudaSuccess;
        if (st->ctx.stream)
            ok &= cudaStreamSynchronize(st->ctx.stream) == cudaSuccess;
        imsi_cudnn_convs_free(st->ctx.convs);
        st->ctx.convs = NULL;
        imsi_cuda_ctx_release(&st->ctx);
        if (st->copy_done)
            ok &= cudaEventDestroy(st->copy_done) == cudaSuccess;
        if (st->copy_stream)
            ok &= cudaStreamDestroy(st->copy_stream) == cudaSuccess;
        if (st->ctx.cudnn)
            ok &= cudnnDestroy(st->ctx.cudnn) == CUDNN_STATUS_SUCCESS;
        if (st->ctx.cublas)
            ok &= cublasDestroy(st->ctx.cublas) == CUBLAS_STATUS_SUCCESS;
        if (st->cublas_workspace)
            ok &= cudaFree(st->cublas_workspace) == cudaSuccess;
        if (st->ctx.stream)
            ok &= cudaStreamDestroy(st->ctx.stream) == cudaSuccess;
        if (!ok)
            (void)cudaGetLastError();
        free(st);
    }
    free(be);
}

static ims_status cuda_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    *out = NULL;
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    cudaError_t e = cudaMalloc(out, nbytes);
    if (e == cudaSuccess)
        return IMS_OK;
    *out = NULL;
    /* A failed cudaMalloc also sets this thread's last error; clear it, or the
     * next kernel launch check (cudaGetLastError) would report it. */
    (void)cudaGetLastError();
    if (e != cudaErrorMemoryAllocation)
        return imsi_cuda_status(err, e, "cudaMalloc(out, nbytes)", __FILE__, __LINE__);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu bytes of device memory on %s (free memory unknown)",
                             nbytes, be->info.name);
    }
    return ims_error_set(err, IMS_ERR_NOMEM,
                         "cannot allocate %zu bytes (%.1f MiB) of device memory on %s: %.1f of %.1f MiB free", nbytes,
                         nbytes / 1048576.0, be->info.name, free_bytes / 1048576.0, total_bytes / 1048576.0);
}

static void cuda_dealloc(ims_backend *be, void *ptr)
{
    cuda_state *st = cuda_state_of(be);
    /* cudaFree waits for the device in practice, but its documentation does not
     * order it after work pending on a non-blocking stream, so wait for the
     * stream explicitly: no kernel may still use ptr. dealloc cannot report a
     * failure; a sticky error resurfaces at the next checked call. */
    int ok = cudaSetDevice(st->device) == cudaSuccess;
    ok &= cudaStreamSynchronize(st->ctx.stream) == cudaSuccess;
    ok &= cudaFree(ptr) == cudaSuccess;
    if (!ok)
        (void)cudaGetLastError();
}

/* Page-locked host memory (cudaHostAlloc returns page-aligned memory, which is
 * 64-byte aligned). Default flags: pinned for this process's CUDA context. */
static ims_status cuda_host_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    *out = NULL;
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    status = IMS_CUDA_CALL(err, cudaHostAlloc(out, nbytes, cudaHostAllocDefault));
    if (status) {
        *out = NULL;
        return imsi_error_prefix(err, status, "cannot allocate %zu bytes of pinned host memory", nbytes);
    }
    return IMS_OK;
}

static void cuda_host_free(ims_backend *be, void *ptr)
{
    /* As cuda_dealloc: no copy on the stream may still read ptr; host_free
     * cannot report a failure, which resurfaces at the next checked call. */
    cuda_state *st = cuda_state_of(be);
    int ok = cudaSetDevice(st->device) == cudaSuccess;
    ok &= cudaStreamSynchronize(st->ctx.stream) == cudaSuccess;
    ok &= cudaFreeHost(ptr) == cudaSuccess;
    if (!ok)
        (void)cudaGetLastError();
}

static ims_status cuda_copy(ims_backend *be, void *dst, const void *src, size_t nbytes, enum cudaMemcpyKind kind,
                            ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    IMS_CUDA_CHECK(err, cudaMemcpyAsync(dst, src, nbytes, kind, st->ctx.stream));
    /* backend.h: copies are complete on return (the host buffer may be reused). */
    IMS_CUDA_CHECK(err, cudaStreamSynchronize(st->ctx.stream));
    return IMS_OK;
}

static ims_status cuda_upload(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err)
{
    return cuda_copy(be, dst, src, nbytes, cudaMemcpyHostToDevice, err);
}

static ims_status cuda_download(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err)
{
    return cuda_copy(be, dst, src, nbytes, cudaMemcpyDeviceToHost, err);
}

static ims_status cuda_fill_bytes(ims_backend *be, void *dst, int byte, size_t nbytes, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    IMS_CUDA_CHECK(err, cudaMemsetAsync(dst, byte, nbytes, st->ctx.stream));
    return IMS_OK;
}

static ims_status cuda_synchronize(ims_backend *be, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    IMS_CUDA_CHECK(err, cudaStreamSynchronize(st->ctx.stream));
    return IMS_OK;
}

/* ---- Benchmarks --------------------------------------------------------------------- */

typedef struct cuda_timer {
    cudaEvent_t start, stop;
} cuda_timer;

static void cuda_timer_free(ims_backend *be, void *timer)
{
    (void)be;
    cuda_timer *t = timer;
    if (!t)
        return;
    if (t->start)
        (void)cudaEventDestroy(t->start);
    if (t->stop)
        (void)cudaEventDestroy(t->stop);
    free(t);
}

static ims_status cuda_timer_create(ims_backend *be, void **timer, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    cuda_timer *t = calloc(1, sizeof *t);
    if (!t)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    *timer = t;
    status = IMS_CUDA_CALL(err, cudaEventCreate(&t->start));
    if (!status)
        status = IMS_CUDA_CALL(err, cudaEventCreate(&t->stop));
    if (status) {
        cuda_timer_free(be, t);
        *timer = NULL;
    }
    return status;
}

static ims_status cuda_timer_mark(ims_backend *be, void *timer, int stop, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    cuda_timer *t = timer;
    IMS_CUDA_CHECK(err, cudaEventRecord(stop ? t->stop : t->start, st->ctx.stream));
    return IMS_OK;
}

static ims_status cuda_timer_elapsed_ms(ims_backend *be, void *timer, double *ms, ims_error *err)
{
    (void)be;
    cuda_timer *t = timer;
    float elapsed = 0;
    IMS_CUDA_CHECK(err, cudaEventSynchronize(t->stop));
    IMS_CUDA_CHECK(err, cudaEventElapsedTime(&elapsed, t->start, t->stop));
    *ms = elapsed;
    return IMS_OK;
}

/* The best of `reps` timed runs of one of the two peak workloads. */
static ims_status cuda_time_best(ims_backend *be, int gemm, void *a, void *b, void *c, size_t bytes, int n,
                                 int reps, double *best_ms, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    void *timer = NULL;
    ims_status status = cuda_timer_create(be, &timer, err);
    const float alpha = 1.0f, beta = 0.0f;
    *best_ms = 1e30;
    for (int rep = -1; !status && rep < reps; rep++) { /* rep -1: warm-up */
        status = cuda_timer_mark(be, timer, 0, err);
        if (!status && gemm)
            status = IMS_CUBLAS_CALL(err,
                            cublasGemmEx(st->ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16F, n, b,
                                         CUDA_R_16F, n, &beta, c, CUDA_R_16F, n, CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT));
        else if (!status)
            status = IMS_CUDA_CALL(err, cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st->ctx.stream));
        if (!status)
            status = cuda_timer_mark(be, timer, 1, err);
        double ms = 0;
        if (!status)
            status = cuda_timer_elapsed_ms(be, timer, &ms, err);
        if (!status && rep >= 0 && ms < *best_ms)
            *best_ms = ms;
    }
    cuda_timer_free(be, timer);
    return status;
}

/* Copy: cudaMemcpyAsync within device memory (1 GiB); GEMM: cublasGemmEx with
 * fp16 inputs and outputs, fp32 accumulation, square n = 8192 (the tensor-core
 * rate our fp16 paths can hope for). Inputs are filled with non-zero bytes. */
static ims_status cuda_measure_peaks(ims_backend *be, int quick, ims_backend_peaks *out, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    size_t bytes = (quick ? 256u : 1024u) << 20;
    int n = quick ? 4096 : 8192;
    size_t gemm_bytes = (size_t)n * n * 2;
    void *a = NULL, *b = NULL, *c = NULL;
    status = IMS_CUDA_CALL(err, cudaMalloc(&a, bytes));
    if (!status)
        status = IMS_CUDA_CALL(err, cudaMalloc(&b, bytes));
    if (!status)
        status = IMS_CUDA_CALL(err, cudaMalloc(&c, gemm_bytes));
    /* 0x3c: halves near 1.0 and modest floats: no denormals, no infinities. */
    if (!status)
        status = IMS_CUDA_CALL(err, cudaMemsetAsync(a, 0x3c, bytes, st->ctx.stream));
    if (!status)
        status = IMS_CUDA_CALL(err, cudaMemsetAsync(b, 0x3b, bytes, st->ctx.stream));
    double ms = 0;
    if (!status)
        status = cuda_time_best(be, 0, a, b, NULL, bytes, 0, 10, &ms, err);
    if (!status) {
        out->copy_gb_per_s = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
        snprintf(out->copy_what, sizeof out->copy_what, "device-to-device cudaMemcpy of %zu MiB (read + write)",
                 bytes >> 20);
        status = cuda_time_best(be, 1, a, b, c, 0, n, 10, &ms, err);
    }
    if (!status) {
        out->gemm_tflop_per_s = 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12;
        snprintf(out->gemm_what, sizeof out->gemm_what, "cublasGemmEx %d^3, fp16 in/out, fp32 accumulate", n);
    }
    if (a)
        (void)cudaFree(a);
    if (b)
        (void)cudaFree(b);
    if (c)
        (void)cudaFree(c);
    return status;
}


/* backend.h upload_async: the copy runs on a second stream; the compute stream
 * waits for its completion event from this point on, so work enqueued earlier
 * overlaps the copy and work enqueued later sees the data. One event serves
 * every copy: cudaStreamWaitEvent uses the event's state at the call. */
static ims_status cuda_upload_async(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    if (!st->copy_stream) {
        IMS_CUDA_CHECK(err, cudaStreamCreateWithFlags(&st->copy_stream, cudaStreamNonBlocking));
        if ((status = IMS_CUDA_CALL(err, cudaEventCreateWithFlags(&st->copy_done, cudaEventDisableTiming)))) {
            (void)cudaStreamDestroy(st->copy_stream);
            st->copy_stream = NULL;
            st->copy_done = NULL;
            return status;
        }
    }
    IMS_CUDA_CHECK(err, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, st->copy_stream));
    IMS_CUDA_CHECK(err, cudaEventRecord(st->copy_done, st->copy_stream));
    IMS_CUDA_CHECK(err, cudaStreamWaitEvent(st->ctx.stream, st->copy_done, 0));
    return IMS_OK;
}

/* Relaxed capture mode: the image loader's threads may call CUDA meanwhile.
 * Not in an IMS_CUDA_SYNC_DEBUG build: it synchronizes after every launch,
 * which no capture survives (callers then run their work plainly). */
static ims_status cuda_capture_begin(ims_backend *be, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
#ifdef IMS_CUDA_SYNC_DEBUG
    (void)st;
    return ims_error_set(err, IMS_ERR_UNSUPPORTED, "graph capture is off in an IMS_CUDA_SYNC_DEBUG build");
#else
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    IMS_CUDA_CHECK(err, cudaStreamBeginCapture(st->ctx.stream, cudaStreamCaptureModeRelaxed));
    st->ctx.hooks.captures++;
    return IMS_OK;
#endif
}

static ims_status cuda_capture_end(ims_backend *be, void **graph, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    *graph = NULL;
    ims_status status = IMS_CUDA_CALL(err, cudaStreamEndCapture(st->ctx.stream, &g));
    if (!status)
        status = IMS_CUDA_CALL(err, cudaGraphInstantiate(&exec, g, 0));
    if (g && cudaGraphDestroy(g) != cudaSuccess)
        (void)cudaGetLastError();
    cuda_graph *cg = NULL;
    if (!status && !(cg = malloc(sizeof *cg)))
        status = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (status) {
        if (exec && cudaGraphExecDestroy(exec) != cudaSuccess)
            (void)cudaGetLastError();
        return status;
    }
    cg->exec = exec;
    cg->generation = st->ctx.generation;
    *graph = cg;
    return IMS_OK;
}

/* A graph replays the addresses it was captured with: if the ops' scratch or
 * the cuDNN workspace has moved since (a larger shape ran), it would touch
 * freed memory, so it is refused and the caller captures again. */
static ims_status cuda_graph_launch(ims_backend *be, void *graph, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    cuda_graph *cg = graph;
    ims_status status = cuda_use_device(st, err);
    if (status)
        return status;
    if (cg->generation != st->ctx.generation)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "a CUDA graph captured before the ops' scratch memory moved "
                             "cannot be replayed: capture it again");
    IMS_CUDA_CHECK(err, cudaGraphLaunch(cg->exec, st->ctx.stream));
    st->ctx.hooks.graph_launches++;
    return IMS_OK;
}

static void cuda_graph_free(ims_backend *be, void *graph)
{
    cuda_state *st = cuda_state_of(be);
    cuda_graph *cg = graph;
    if (!cg)
        return;
    int ok = cudaSetDevice(st->device) == cudaSuccess;
    ok &= cudaStreamSynchronize(st->ctx.stream) == cudaSuccess;
    ok &= cudaGraphExecDestroy(cg->exec) == cudaSuccess;
    if (!ok)
        (void)cudaGetLastError();
    free(cg);
}

/* ---- Ops ------------------------------------------------------------------------- */

/* The op entries live in kernels/cuda/<op>.c (kernels/cuda/ops_cuda.h); each
 * slot here makes the backend's GPU current and passes the context. */

static ims_status cuda_op_convert(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_convert(&st->ctx, src, dst, err);
}

static ims_status cuda_op_l2_normalize_rows(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, imsi_tensor *norms,
                                            ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_l2_normalize_rows(&st->ctx, x, y, norms, err);
}

static ims_status cuda_op_linear(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w, const imsi_tensor *bias,
                                 imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_linear(&st->ctx, x, w, bias, y, err);
}

static ims_status cuda_op_knn_select(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k,
                                     int path, imsi_tensor *ids, imsi_tensor *scores, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_knn_select(&st->ctx, table, queries, k, path, ids, scores, err);
}

static ims_status cuda_op_knn_rescore(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries,
                                      const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                                      int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status
                  : imsi_cuda_op_knn_rescore(&st->ctx, table, queries, cand, cand_scores, margin, k, ids, scores, ok,
                                             err);
}

static ims_status cuda_op_conv2d(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x,
                                 const imsi_tensor *w, const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_conv2d(&st->ctx, p, x, w, bias, y, err);
}

static ims_status cuda_op_pool2d(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                                 ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_pool2d(&st->ctx, p, x, y, err);
}

static ims_status cuda_op_global_avg_pool(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_global_avg_pool(&st->ctx, x, y, err);
}

static ims_status cuda_op_input_u8(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                                   imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_input_u8(&st->ctx, x, scale, shift, y, err);
}

static ims_status cuda_op_embed_layernorm(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                          const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                          const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_embed_layernorm(&st->ctx, ids, word, pos, type, gamma, beta, eps, y, err);
}

static ims_status cuda_op_bias_act(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                                   imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_bias_act(&st->ctx, x, bias, act, y, err);
}

static ims_status cuda_op_add_layernorm(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                        const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                        double eps, imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_add_layernorm(&st->ctx, x, bias, residual, gamma, beta, eps, y, err);
}

static ims_status cuda_op_attention(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                                    imsi_tensor *scores, imsi_tensor *ctx, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_attention(&st->ctx, qkv, lengths, heads, scores, ctx, err);
}

static ims_status cuda_op_pool_normalize(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                         imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err)
{
    cuda_state *st = cuda_state_of(be);
    ims_status status = cuda_use_device(st, err);
    return status ? status : imsi_cuda_op_pool_normalize(&st->ctx, x, lengths, pooling, normalize, y, err);
}

static const imsi_backend_ops cuda_ops = {
    /* required */
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .dealloc = cuda_dealloc,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .fill_bytes = cuda_fill_bytes,
    .synchronize = cuda_synchronize,
    .convert = cuda_op_convert,
    .l2_normalize_rows = cuda_op_l2_normalize_rows,
    .linear = cuda_op_linear,
    .knn_select = cuda_op_knn_select,
    .conv2d = cuda_op_conv2d,
    .pool2d = cuda_op_pool2d,
    .global_avg_pool = cuda_op_global_avg_pool,
    .input_u8 = cuda_op_input_u8,
    .embed_layernorm = cuda_op_embed_layernorm,
    .bias_act = cuda_op_bias_act,
    .add_layernorm = cuda_op_add_layernorm,
    .attention = cuda_op_attention,
    .pool_normalize = cuda_op_pool_normalize,
    /* optional */
    .timer_create = cuda_timer_create,
    .timer_mark = cuda_timer_mark,
    .timer_elapsed_ms = cuda_timer_elapsed_ms,
    .timer_free = cuda_timer_free,
    .measure_peaks = cuda_measure_peaks,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .upload_async = cuda_upload_async,
    .knn_rescore = cuda_op_knn_rescore,
};

/* ---- Creation ---------------------------------------------------------------------- */

/* The stream and the library handles, bound to it. On failure the caller's
 * cuda_destroy releases whatever was created (unset handles stay NULL). */
static ims_status cuda_state_init(cuda_state *st, ims_error *err)
{
    IMS_CUDA_CHECK(err, cudaSetDevice(st->device));
    IMS_CUDA_CHECK(err, cudaStreamCreateWithFlags(&st->ctx.stream, cudaStreamNonBlocking));
    IMS_CUBLAS_CHECK(err, cublasCreate(&st->ctx.cublas));
    IMS_CUBLAS_CHECK(err, cublasSetStream(st->ctx.cublas, st->ctx.stream));
    /* Plain fp32 GEMMs, no TF32 (CUBLAS_TF32_TENSOR_OP_MATH would round inputs
     * to 10 mantissa bits, errors near 1e-3): the fp32 path is the reference
     * the CPU backend and the f16 paths are compared against. */
    IMS_CUBLAS_CHECK(err, cublasSetMathMode(st->ctx.cublas, CUBLAS_DEFAULT_MATH));
    /* A fixed workspace of our own (after cublasSetStream, which resets it):
     * without one cuBLAS takes its workspace from a pool, and may pick other
     * kernels (so other bits) inside a graph capture than outside it. 32 MiB
     * is NVIDIA's recommendation for Hopper, 4 MiB for earlier GPUs. */
    int major = 0;
    IMS_CUDA_CHECK(err, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, st->device));
    size_t ws_bytes = (major >= 9 ? 32u : 4u) << 20;
    IMS_CUDA_CHECK(err, cudaMalloc(&st->cublas_workspace, ws_bytes));
    IMS_CUBLAS_CHECK(err, cublasSetWorkspace(st->ctx.cublas, st->cublas_workspace, ws_bytes));
    /* Created with the backend, not at the first convolution, so that a broken
     * cuDNN install fails at backend creation, not mid-model. */
    IMS_CUDNN_CHECK(err, cudnnCreate(&st->ctx.cudnn));
    IMS_CUDNN_CHECK(err, cudnnSetStream(st->ctx.cudnn, st->ctx.stream));
    return IMS_OK;
}

static ims_status cuda_info_fill(ims_backend *be, const cuda_state *st, ims_error *err)
{
    ims_backend_info *info = &be->info;
    struct cudaDeviceProp prop;
    IMS_CUDA_CHECK(err, cudaGetDeviceProperties(&prop, st->device));
    size_t free_bytes = 0, total_bytes = 0;
    IMS_CUDA_CHECK(err, cudaMemGetInfo(&free_bytes, &total_bytes));
    IMS_CUDA_CHECK(err, cudaDriverGetVersion(&info->driver_version));
    IMS_CUDA_CHECK(err, cudaRuntimeGetVersion(&info->runtime_version));
    IMS_CUBLAS_CHECK(err, cublasGetVersion(st->ctx.cublas, &info->cublas_version));
    info->kind = IMS_BACKEND_CUDA;
    snprintf(info->name, sizeof info->name, "cuda:%d", st->device);
    snprintf(info->device, sizeof info->device, "%.*s", (int)sizeof prop.name, prop.name);
    info->threads = 0;
    info->compute_major = prop.major;
    info->compute_minor = prop.minor;
    info->multiprocessors = prop.multiProcessorCount;
    info->memory_total = total_bytes;
    info->memory_free = free_bytes;
    info->cudnn_version = (int)cudnnGetVersion();
    return IMS_OK;
}

ims_status imsi_backend_cuda_create(int device, ims_backend **out, ims_error *err)
{
    *out = NULL;
    int count = 0;
    ims_status status = ims_cuda_device_count(&count, err);
    if (status)
        return status;
    if (device < 0 || device >= count)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "CUDA device %d does not exist: %d device%s (0..%d)", device, count,
                             count == 1 ? "" : "s", count - 1);
    ims_backend *be = calloc(1, sizeof *be);
    cuda_state *st = calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate the CUDA backend");
    }
    st->device = device;
    be->impl = st;
    be->ops = &cuda_ops;
    be->memory = IMS_MEMORY_DEVICE;
    snprintf(be->info.name, sizeof be->info.name, "cuda:%d", device);
    status = cuda_state_init(st, err);
    if (!status)
        status = cuda_info_fill(be, st, err);
    if (status) {
        (void)cudaGetLastError(); /* the failed call's error is in err now */
        imsi_error_prefix(err, status, "creating the CUDA backend on device %d", device);
        cuda_destroy(be);
        return status;
    }
    *out = be;
    return IMS_OK;
}
