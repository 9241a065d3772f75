/* kernels/cuda/conv2d.c: NHWC convolution + bias + ReLU with cuDNN, output
 * into a channel slice.
 *
 * The slice: y is described as (N, O, OH, OW) with NHWC strides of the whole
 * output (n: OH*OW*Ctot, c: 1, h: OW*Ctot, w: Ctot) and its pointer advanced
 * by the channel offset, so each branch of a block writes its channels of the
 * concatenation directly. z (the residual input, scaled by alpha2 = 0) is y.
 *
 * Two ways to run a call (conv_plan.h):
 *   fused:    cudnnConvolutionBiasActivationForward straight into the slice;
 *   fallback: cudnnConvolutionForward into a packed (N, OH, OW, O) buffer (the
 *             ops' shared scratch), then our bias + ReLU + slice-copy kernel
 *             (conv_epilogue.cu), for shapes where cuDNN refuses the fused
 *             call (a strided output, an fp16 slice at an odd channel).
 *
 * Precisions (the convolution descriptor's math type; compute type f32):
 *   fp32: CUDNN_FMA_MATH (no tensor cores, no TF32): only results with FMA
 *         math are kept (cuDNN also reports DEFAULT_MATH ones, which may
 *         use TF32), and no FFT or non-fused Winograd (conv_plan.c);
 *   tf32: CUDNN_TENSOR_OP_MATH on f32 data (TF32 inputs, f32 accumulation);
 *   fp16: f16 tensors, CUDNN_TENSOR_OP_MATH, f32 compute type (accumulation).
 *
 * Plans, once per key (shapes, precision, activation, alignment:
 * conv_plan.h), cached in cuda->convs with their descriptors, failures too:
 * cudnnFindConvolutionForwardAlgorithmEx times the candidates on the real
 * buffers (writing y, which the call then overwrites) with up to
 * IMS_CUDNN_WORKSPACE_MAX bytes of workspace, cuDNN's heuristics add theirs,
 * and the first usable candidate with which the fused call runs, and
 * ignores the old output (fused_check), is kept; if none, the same for the
 * fallback (conv_plan.c: imsi_conv_search). The
 * search runs the convolution, so it cannot run during CUDA graph capture:
 * run a batch size once before capturing it.
 *
 * One workspace buffer, grown as plans need, serves every convolution (all
 * run on the backend's one stream); it does not grow during capture.
 */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/conv_plan.h"
#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define IMS_CUDNN_WORKSPACE_MAX ((size_t)256 << 20)
/* cudnnFind tries each algorithm with the descriptor's math type and with
 * DEFAULT_MATH: twice the algorithm count, or the FMA results (fp32) can be
 * crowded out by faster TF32 ones. cuDNN's heuristics add as many. */
#define IMS_CUDNN_FIND_COUNT (2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT)

/* conv_plan.h mirrors cuDNN's numbers: they must agree. */
_Static_assert(IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM == (int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM &&
                   IMSI_CONV_ALGO_FFT == (int)CUDNN_CONVOLUTION_FWD_ALGO_FFT &&
                   IMSI_CONV_ALGO_WINOGRAD_NONFUSED == (int)CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
               "imsi_conv_algo");
_Static_assert(IMSI_CONV_MATH_DEFAULT == (int)CUDNN_DEFAULT_MATH && IMSI_CONV_MATH_TENSOR_OP == (int)CUDNN_TENSOR_OP_MATH &&
                   IMSI_CONV_MATH_FMA == (int)CUDNN_FMA_MATH,
               "imsi_conv_math");
_Static_assert(IMSI_CONV_MAX_CANDIDATES >= 2 * IMS_CUDNN_FIND_COUNT, "candidates: cudnnFind's and the heuristics'");

/* A plan's cuDNN descriptors (imsi_conv_plan.impl). */
typedef struct conv_descs {
    cudnnTensorDescriptor_t x, y, packed, bias; /* y: the strided slice; packed: (N, OH, OW, O) */
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
} conv_descs;

struct imsi_cudnn_convs {
    imsi_conv_cache cache;
    cudnnActivationDescriptor_t relu, identity;
    unsigned int *differs; /* device word for the plan-time check of fused candidates */
    void *workspace; /* device, workspace_size bytes */
    size_t workspace_size;
};

/* One call: what the search's candidates run on. */
typedef struct conv_call {
    imsi_cuda_ctx *cuda;
    imsi_cudnn_convs *c;
    const imsi_conv_key *key;
    const void *x, *w, *bias; // (N, H, W, C), (O, KH, KW, C), (O)
    void *y;                  // the slice's first channel: (N, OH, OW) rows of key->y_channels, O written
} conv_call;


static size_t packed_bytes(const imsi_conv_key *k)
{
    size_t elem = k->precision == IMS_PRECISION_FP16 ? 2 : 4;
    size_t oh = (size_t)imsi_conv_out(k->h, k->kh, k->sh, k->ph), ow = (size_t)imsi_conv_out(k->w, k->kw, k->sw, k->pw);
    return (size_t)k->n * oh * ow * (size_t)k->o * elem;
}

/* The math type a precision's descriptor starts with (and searches with). */
static cudnnMathType_t precision_math(int precision)
{
    return precision == IMS_PRECISION_FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
}

static void descs_release(void *ctx, void *impl)
{
    (void)ctx;
    conv_descs *d = impl;
    if (!d)
        return;
    /* destroy cannot report failures */
    if (d->x) (void)cudnnDestroyTensorDescriptor(d->x);
    if (d->y) (void)cudnnDestroyTensorDescriptor(d->y);
    if (d->packed) (void)cudnnDestroyTensorDescriptor(d->packed);
    if (d->bias) (void)cudnnDestroyTensorDescriptor(d->bias);
    if (d->w) (void)cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) (void)cudnnDestroyConvolutionDescriptor(d->conv);
    free(d);
}

static ims_status descs_set(conv_descs *d, const imsi_conv_key *k, ims_error *err)
{
    cudnnDataType_t dt = k->precision == IMS_PRECISION_FP16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    int oh = imsi_conv_out(k->h, k->kh, k->sh, k->ph), ow = imsi_conv_out(k->w, k->kw, k->sw, k->pw);
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&d->x));
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&d->y));
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&d->packed));
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&d->bias));
    IMS_CUDNN_CHECK(err, cudnnCreateFilterDescriptor(&d->w));
    IMS_CUDNN_CHECK(err, cudnnCreateConvolutionDescriptor(&d->conv));
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, dt, k->n, k->c, k->h, k->w));
    /* (N, O, OH, OW) inside an (N, OH, OW, Ctot) tensor */
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptorEx(d->y, dt, k->n, k->o, oh, ow, oh * ow * k->y_channels, 1,
                                                      ow * k->y_channels, k->y_channels));
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptor(d->packed, CUDNN_TENSOR_NHWC, dt, k->n, k->o, oh, ow));
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptor(d->bias, CUDNN_TENSOR_NHWC, dt, 1, k->o, 1, 1));
    IMS_CUDNN_CHECK(err, cudnnSetFilter4dDescriptor(d->w, dt, CUDNN_TENSOR_NHWC, k->o, k->c, k->kh, k->kw));
    IMS_CUDNN_CHECK(err, cudnnSetConvolution2dDescriptor(d->conv, k->ph, k->pw, k->sh, k->sw, 1, 1,
                                                         CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    IMS_CUDNN_CHECK(err, cudnnSetConvolutionMathType(d->conv, precision_math(k->precision)));
    return IMS_OK;
}

static ims_status descs_prepare(void *ctx, const imsi_conv_key *key, void **impl, ims_error *err)
{
    (void)ctx;
    *impl = NULL;
    conv_descs *d = calloc(1, sizeof *d);
    if (!d)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_status st = descs_set(d, key, err);
    if (st) {
        descs_release(NULL, d);
        return st;
    }
    *impl = d;
    return IMS_OK;
}

/* Grows the shared workspace to at least `bytes`; never during capture. */
static ims_status workspace_reserve(imsi_cuda_ctx *cuda, imsi_cudnn_convs *c, size_t bytes, ims_error *err)
{
    if (bytes <= c->workspace_size)
        return IMS_OK;
    if (imsi_cuda_capturing(cuda))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "conv2d: the cuDNN workspace must grow to %zu bytes, which it "
                             "cannot during graph capture", bytes);
    if (c->workspace) {
        IMS_CUDA_CHECK(err, cudaStreamSynchronize(cuda->stream)); /* no convolution may still use it */
        IMS_CUDA_CHECK(err, cudaFree(c->workspace));
        c->workspace = NULL;
        c->workspace_size = 0;
        cuda->generation++; /* graphs that used the old buffer are stale */
    }
    IMS_CUDA_CHECK(err, cudaMalloc(&c->workspace, bytes));
    c->workspace_size = bytes;
    return IMS_OK;
}

/* A cuDNN status that means "not this way" rather than a broken device or
 * memory: the search tries the next candidate, or the fallback. */
static int cudnn_refused(cudnnStatus_t s)
{
    int category = CUDNN_STATUS_CATEGORY(s);
    return category == CUDNN_STATUS_BAD_PARAM || category == CUDNN_STATUS_NOT_SUPPORTED;
}

static void add_candidates(const cudnnConvolutionFwdAlgoPerf_t *perf, int count, imsi_conv_candidate *out, int *n,
                           int max)
{
    for (int i = 0; i < count && *n < max; i++) {
        imsi_conv_candidate cand = {(int)perf[i].algo, perf[i].status == CUDNN_STATUS_SUCCESS, (int)perf[i].mathType,
                                    perf[i].memory};
        out[(*n)++] = cand;
    }
}

/* imsi_conv_search_ops.gather: cuDNN's timed search on the mode's output
 * layout, then its heuristics (which also list what the search could not
 * time). A refused search lists nothing; other failures are hard. */
static int conv_gather(void *ctx, void *impl, int mode, imsi_conv_candidate *out, int max, ims_error *err)
{
    conv_call *call = ctx;
    conv_descs *d = impl;
    imsi_cudnn_convs *c = call->c;
    cudnnHandle_t handle = call->cuda->cudnn;
    ims_error ws_err = {0};
    if (workspace_reserve(call->cuda, c, IMS_CUDNN_WORKSPACE_MAX, &ws_err)) {
        /* not enough memory for the search's workspace: search without one */
        (void)cudaGetLastError();
        if (c->workspace) {
            (void)cudaFree(c->workspace);
            c->workspace = NULL;
            call->cuda->generation++;
        }
        c->workspace_size = 0;
    }
    cudnnTensorDescriptor_t ydesc = mode == IMSI_CONV_MODE_FUSED ? d->y : d->packed;
    void *y = call->y;
    if (mode == IMSI_CONV_MODE_FALLBACK &&
        imsi_cuda_scratch(call->cuda, packed_bytes(call->key), "conv2d (packed output)", &y, err))
        return -1;
    if (IMS_CUDNN_CALL(err, cudnnSetConvolutionMathType(d->conv, precision_math(call->key->precision))))
        return -1;
    cudnnConvolutionFwdAlgoPerf_t perf[IMS_CUDNN_FIND_COUNT];
    int returned = 0, n = 0;
    cudnnStatus_t s = cudnnFindConvolutionForwardAlgorithmEx(handle, d->x, call->x, d->w, call->w, d->conv, ydesc, y,
                                                             IMS_CUDNN_FIND_COUNT, &returned, perf, c->workspace,
                                                             c->workspace_size);
    if (s == CUDNN_STATUS_SUCCESS)
        add_candidates(perf, returned, out, &n, max);
    else if (!cudnn_refused(s))
        return imsi_cudnn_status(err, s, "cudnnFindConvolutionForwardAlgorithmEx", __FILE__, __LINE__), -1;
    (void)cudaGetLastError();
    returned = 0;
    s = cudnnGetConvolutionForwardAlgorithm_v7(handle, d->x, d->w, d->conv, ydesc, IMS_CUDNN_FIND_COUNT, &returned,
                                               perf);
    if (s == CUDNN_STATUS_SUCCESS)
        add_candidates(perf, returned, out, &n, max);
    (void)cudaGetLastError();
    return n;
}

/* Runs the call in `mode` with algorithm a (math type and workspace set). */
static cudnnStatus_t conv_run(conv_call *call, conv_descs *d, int mode, cudnnConvolutionFwdAlgo_t a, size_t ws_bytes,
                              void *packed)
{
    imsi_cudnn_convs *c = call->c;
    cudnnHandle_t handle = call->cuda->cudnn;
    const float one = 1.0f, zero = 0.0f;
    if (mode == IMSI_CONV_MODE_FUSED)
        return cudnnConvolutionBiasActivationForward(handle, &one, d->x, call->x, d->w, call->w, d->conv, a,
                                                     c->workspace, ws_bytes, &zero, d->y, call->y, d->bias, call->bias,
                                                     call->key->relu ? c->relu : c->identity, d->y, call->y);
    return cudnnConvolutionForward(handle, &one, d->x, call->x, d->w, call->w, d->conv, a, c->workspace, ws_bytes,
                                   &zero, d->packed, packed);
}

/* Then, on the fallback path, our kernel: bias, ReLU, into the slice. */
static ims_status epilogue(conv_call *call, const void *packed, ims_error *err)
{
    const imsi_conv_key *k = call->key;
    size_t rows = (size_t)k->n * (size_t)imsi_conv_out(k->h, k->kh, k->sh, k->ph) *
                  (size_t)imsi_conv_out(k->w, k->kw, k->sw, k->pw);
    IMS_CUDA_CHECK(err, imsi_cuda_conv_epilogue(packed, call->bias, call->y, rows, k->o, k->y_channels, 0, k->relu,
                                                k->precision == IMS_PRECISION_FP16, call->cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, call->cuda->stream);
    return IMS_OK;
}

/* The fused call's residual input z is y itself, scaled by alpha2 = 0; if
 * cuDNN read it anyway, a NaN left in y (a test's poison, an f16 overflow)
 * would come out as NaN, or as 0 after a ReLU that drops NaN. So a fused
 * candidate runs twice at plan time, over zeros and over NaN, and must give
 * the same bits. 0: it ran and ignores z; 1: cuDNN refused it or a step
 * failed; 2: its output depends on z. */
static int fused_check(conv_call *call, conv_descs *d, cudnnConvolutionFwdAlgo_t a, size_t ws_bytes)
{
    const imsi_conv_key *k = call->key;
    cudaStream_t s = call->cuda->stream;
    size_t elem = k->precision == IMS_PRECISION_FP16 ? 2 : 4;
    size_t rows = (size_t)k->n * (size_t)imsi_conv_out(k->h, k->kh, k->sh, k->ph) *
                  (size_t)imsi_conv_out(k->w, k->kw, k->sw, k->pw);
    size_t pitch = (size_t)k->y_channels * elem, width = (size_t)k->o * elem;
    unsigned int differs = 1;
    void *copy = NULL; // (rows, O) packed: the result over zeros
    ims_error e = {0};
    if (imsi_cuda_scratch(call->cuda, packed_bytes(k), "conv2d (plan check)", &copy, &e) ||
        cudaMemset2DAsync(call->y, pitch, 0, width, rows, s) != cudaSuccess)
        return 1;
    if (conv_run(call, d, IMSI_CONV_MODE_FUSED, a, ws_bytes, NULL) != CUDNN_STATUS_SUCCESS)
        return 1;
    if (cudaMemcpy2DAsync(copy, width, call->y, pitch, width, rows, cudaMemcpyDeviceToDevice, s) != cudaSuccess ||
        cudaMemset2DAsync(call->y, pitch, 0xff, width, rows, s) != cudaSuccess || /* NaN in f32 and f16 */
        conv_run(call, d, IMSI_CONV_MODE_FUSED, a, ws_bytes, NULL) != CUDNN_STATUS_SUCCESS ||
        cudaMemsetAsync(call->c->differs, 0, sizeof differs, s) != cudaSuccess ||
        imsi_cuda_conv_slice_differs(copy, call->y, rows, k->o, k->y_channels, k->precision == IMS_PRECISION_FP16,
                                     call->c->differs, s) != cudaSuccess ||
        cudaMemcpyAsync(&differs, call->c->differs, sizeof differs, cudaMemcpyDeviceToHost, s) != cudaSuccess ||
        cudaStreamSynchronize(s) != cudaSuccess)
        return 1;
    if (differs)
        call->cuda->hooks.conv_z_reads++;
    return differs ? 2 : 0;
}

/* imsi_conv_search_ops.attempt: the call, once, with candidate c. */
static int conv_attempt(void *ctx, void *impl, int mode, imsi_conv_candidate *c)
{
    conv_call *call = ctx;
    conv_descs *d = impl;
    cudnnHandle_t handle = call->cuda->cudnn;
    cudnnTensorDescriptor_t ydesc = mode == IMSI_CONV_MODE_FUSED ? d->y : d->packed;
    cudnnConvolutionFwdAlgo_t a = (cudnnConvolutionFwdAlgo_t)c->algo;
    ims_error scratch_err = {0};
    size_t bytes = 0;
    void *packed = NULL;
    int ok = cudnnSetConvolutionMathType(d->conv, (cudnnMathType_t)c->math) == CUDNN_STATUS_SUCCESS &&
             cudnnGetConvolutionForwardWorkspaceSize(handle, d->x, d->w, d->conv, ydesc, a, &bytes) ==
                 CUDNN_STATUS_SUCCESS &&
             bytes <= IMS_CUDNN_WORKSPACE_MAX && !workspace_reserve(call->cuda, call->c, bytes, &scratch_err);
    if (ok && mode == IMSI_CONV_MODE_FALLBACK)
        ok = !imsi_cuda_scratch(call->cuda, packed_bytes(call->key), "conv2d (packed output)", &packed, &scratch_err);
    if (mode == IMSI_CONV_MODE_FUSED)
        ok = ok && fused_check(call, d, a, bytes) == 0;
    else
        ok = ok && conv_run(call, d, mode, a, bytes, packed) == CUDNN_STATUS_SUCCESS &&
             !epilogue(call, packed, &scratch_err);
    (void)cudaGetLastError(); /* a refused candidate's error must not surface at the next launch check */
    if (ok)
        c->memory = bytes;
    return ok;
}

static const imsi_conv_search_ops release_ops = {NULL, NULL, descs_release, NULL, NULL};

void imsi_cudnn_convs_free(imsi_cudnn_convs *c)
{
    if (!c)
        return;
    imsi_conv_cache_free(&c->cache, &release_ops);
    if (c->relu) (void)cudnnDestroyActivationDescriptor(c->relu);
    if (c->identity) (void)cudnnDestroyActivationDescriptor(c->identity);
    if (c->differs && cudaFree(c->differs) != cudaSuccess)
        (void)cudaGetLastError();
    if (c->workspace && cudaFree(c->workspace) != cudaSuccess)
        (void)cudaGetLastError();
    free(c);
}

static ims_status convs_create(imsi_cudnn_convs **out, ims_error *err)
{
    imsi_cudnn_convs *c = calloc(1, sizeof *c);
    if (!c)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_status st = IMS_CUDNN_CALL(err, cudnnCreateActivationDescriptor(&c->relu));
    if (!st) st = IMS_CUDNN_CALL(err, cudnnSetActivationDescriptor(c->relu, CUDNN_ACTIVATION_RELU,
                                                                   CUDNN_NOT_PROPAGATE_NAN, 0.0));
    if (!st) st = IMS_CUDNN_CALL(err, cudnnCreateActivationDescriptor(&c->identity));
    if (!st) st = IMS_CUDNN_CALL(err, cudnnSetActivationDescriptor(c->identity, CUDNN_ACTIVATION_IDENTITY,
                                                                   CUDNN_NOT_PROPAGATE_NAN, 0.0));
    if (!st) st = IMS_CUDA_CALL(err, cudaMalloc((void **)&c->differs, sizeof *c->differs));
    if (st) {
        imsi_cudnn_convs_free(c);
        return st;
    }
    *out = c;
    return IMS_OK;
}

/* One cuDNN call: n images of x (N, H, W, C) into the slice at yp of y's rows. */
static ims_status conv_part(imsi_cuda_ctx *cuda, const imsi_conv2d_params *p, int n, const imsi_tensor *x,
                            const void *xp, const imsi_tensor *w, const imsi_tensor *bias, const imsi_tensor *y,
                            void *yp, ims_error *err)
{
    imsi_cudnn_convs *c = cuda->convs;
    int capturing = imsi_cuda_capturing(cuda);
    if (capturing && cuda->hooks.fail_in_capture)
        return ims_error_set(err, IMS_ERR_CUDA, "conv2d: failing during graph capture, as the test asked");
    imsi_conv_key key;
    imsi_conv_key_make(&key, n, (int)x->shape[1], (int)x->shape[2], (int)x->shape[3], (int)w->shape[0],
                       (int)w->shape[1], (int)w->shape[2], p->stride_h, p->stride_w, p->pad_h, p->pad_w,
                       (int)y->shape[3], (int)p->precision, p->relu, xp, w->data, bias->data, yp);
    conv_call call = {cuda, c, &key, xp, w->data, bias->data, yp};
    const imsi_conv_search_ops ops = {&call, descs_prepare, descs_release, conv_gather, conv_attempt};
    imsi_conv_plan *pl = NULL;
    ims_status st = imsi_conv_cache_get(&c->cache, &key, capturing, cuda->hooks.conv_force_fallback,
                                        IMS_CUDNN_WORKSPACE_MAX, &ops, &pl, err);
    cuda->hooks.conv_searches = c->cache.searches;
    if (st)
        return st;
    cuda->hooks.conv_fallbacks += pl->mode == IMSI_CONV_MODE_FALLBACK;
    conv_descs *d = pl->impl;
    void *packed = NULL;
    st = workspace_reserve(cuda, c, pl->cand.memory, err);
    if (!st && pl->mode == IMSI_CONV_MODE_FALLBACK)
        st = imsi_cuda_scratch(cuda, packed_bytes(&key), "conv2d (packed output)", &packed, err);
    if (!st) st = IMS_CUDNN_CALL(err, cudnnSetConvolutionMathType(d->conv, (cudnnMathType_t)pl->cand.math));
    if (!st)
        st = imsi_cudnn_status(err, conv_run(&call, d, pl->mode, (cudnnConvolutionFwdAlgo_t)pl->cand.algo,
                                             pl->cand.memory, packed),
                               pl->mode == IMSI_CONV_MODE_FUSED ? "cudnnConvolutionBiasActivationForward"
                                                                : "cudnnConvolutionForward (fallback)",
                               __FILE__, __LINE__);
    if (!st && pl->mode == IMSI_CONV_MODE_FALLBACK)
        st = epilogue(&call, packed, err);
    return st;
}

ims_status imsi_cuda_op_conv2d(imsi_cuda_ctx *cuda, const imsi_conv2d_params *p, const imsi_tensor *x,
                               const imsi_tensor *w, const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    if (!cuda->convs) {
        ims_status st = convs_create(&cuda->convs, err);
        if (st)
            return st;
    }
    /* Batches past cuDNN's 2^31-element tensors run in parts (conv_plan.h). */
    int n = (int)x->shape[0];
    int per = imsi_conv_max_batch(x->shape[1], x->shape[2], x->shape[3], y->shape[1], y->shape[2], y->shape[3]);
    if (per < 1)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "conv2d: one image of (%lld, %lld, %lld) into (%lld, %lld, "
                             "%lld) passes cuDNN's 2^31-element limit", (long long)x->shape[1], (long long)x->shape[2],
                             (long long)x->shape[3], (long long)y->shape[1], (long long)y->shape[2],
                             (long long)y->shape[3]);
    size_t elem = ims_dtype_size(y->dtype);
    size_t x_image = (size_t)x->shape[1] * x->shape[2] * x->shape[3] * elem;
    size_t y_image = (size_t)y->shape[1] * y->shape[2] * y->shape[3] * elem;
    char *yp = (char *)y->data + (size_t)p->y_channel_offset * elem; /* the slice's first channel */
    for (int n0 = 0; n0 < n; n0 += per) {
        int part = n - n0 < per ? n - n0 : per;
        ims_status st = conv_part(cuda, p, part, x, (const char *)x->data + (size_t)n0 * x_image, w, bias, y,
                                  yp + (size_t)n0 * y_image, err);
        if (st)
            return part < n ? imsi_error_prefix(err, st, "conv2d images %d..%d of %d", n0, n0 + part - 1, n) : st;
    }
    return IMS_OK;
}
