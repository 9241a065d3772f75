/* kernels/cuda/conv2d.c: NHWC convolution + bias + ReLU through
 * cudnnConvolutionBiasActivationForward, output into a channel slice.
 *
 * The slice: y is described as (N, O, OH, OW) with NHWC strides of the whole
 * output (n: OH*OW*Ctot, c: 1, h: OW*Ctot, w: Ctot) and its pointer advanced
 * by the channel offset, so each branch of a block writes its channels of the
 * concatenation directly. z (the residual input, scaled by alpha2 = 0) is y.
 *
 * Precisions (the convolution descriptor's math type; compute type f32):
 *   fp32: CUDNN_FMA_MATH (no tensor cores, no TF32): only results with FMA
 *         math are kept (cuDNN also reports DEFAULT_MATH ones, which may
 *         use TF32), and no FFT or non-fused Winograd (conv_plan.c);
 *   tf32: CUDNN_TENSOR_OP_MATH on f32 data (TF32 inputs, f32 accumulation);
 *   fp16: f16 tensors, CUDNN_TENSOR_OP_MATH, f32 compute type (accumulation).
 *
 * Algorithm choice: cudnnFindConvolutionForwardAlgorithmEx runs the candidates
 * on the real buffers (writing y, which the convolution then overwrites) with
 * up to IMS_CUDNN_WORKSPACE_MAX bytes of workspace; the fastest successful
 * one is kept per shape. Not usable during CUDA graph capture: run a batch
 * size once before capturing it.
 *
 * Plans (descriptors, algorithm, workspace size) are cached per key (batch,
 * sizes, filter, stride, padding, output width, precision, activation and
 * the addresses' alignment: conv_plan.h) in cuda->convs;
 * one workspace buffer, grown as plans need, serves every convolution (all
 * run on the backend's one stream).
 */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/conv_plan.h"
#include "backend/cuda_check.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define IMS_CUDNN_WORKSPACE_MAX ((size_t)256 << 20)
/* cudnnFind tries each algorithm with the descriptor's math type and with
 * DEFAULT_MATH: twice the algorithm count, or the FMA results (fp32) can be
 * crowded out by faster TF32 ones. */
#define IMS_CUDNN_FIND_COUNT (2 * CUDNN_CONVOLUTION_FWD_ALGO_COUNT)

/* conv_plan.h mirrors cuDNN's numbers: they must agree. */
_Static_assert(IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM == (int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM &&
                   IMSI_CONV_ALGO_FFT == (int)CUDNN_CONVOLUTION_FWD_ALGO_FFT &&
                   IMSI_CONV_ALGO_WINOGRAD_NONFUSED == (int)CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
               "imsi_conv_algo");
_Static_assert(IMSI_CONV_MATH_DEFAULT == (int)CUDNN_DEFAULT_MATH && IMSI_CONV_MATH_TENSOR_OP == (int)CUDNN_TENSOR_OP_MATH &&
                   IMSI_CONV_MATH_FMA == (int)CUDNN_FMA_MATH,
               "imsi_conv_math");

typedef struct conv_plan {
    imsi_conv_key key;
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
    size_t workspace;
} conv_plan;

struct imsi_cudnn_convs {
    conv_plan *plans;
    size_t count, cap;
    cudnnActivationDescriptor_t relu, identity;
    void *workspace; /* device, workspace_size bytes */
    size_t workspace_size;
};

static void plan_destroy(conv_plan *pl)
{
    /* destroy cannot report failures */
    if (pl->x) (void)cudnnDestroyTensorDescriptor(pl->x);
    if (pl->y) (void)cudnnDestroyTensorDescriptor(pl->y);
    if (pl->bias) (void)cudnnDestroyTensorDescriptor(pl->bias);
    if (pl->w) (void)cudnnDestroyFilterDescriptor(pl->w);
    if (pl->conv) (void)cudnnDestroyConvolutionDescriptor(pl->conv);
    memset(pl, 0, sizeof *pl);
}

void imsi_cudnn_convs_free(imsi_cudnn_convs *cache)
{
    if (!cache)
        return;
    for (size_t i = 0; i < cache->count; i++)
        plan_destroy(&cache->plans[i]);
    free(cache->plans);
    if (cache->relu) (void)cudnnDestroyActivationDescriptor(cache->relu);
    if (cache->identity) (void)cudnnDestroyActivationDescriptor(cache->identity);
    if (cache->workspace && cudaFree(cache->workspace) != cudaSuccess)
        (void)cudaGetLastError();
    free(cache);
}

static ims_status cache_create(imsi_cudnn_convs **out, ims_error *err)
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
    if (st) {
        imsi_cudnn_convs_free(c);
        return st;
    }
    *out = c;
    return IMS_OK;
}

/* Grows the shared workspace to at least `bytes`. */
static ims_status workspace_reserve(imsi_cudnn_convs *c, cudaStream_t stream, size_t bytes, ims_error *err)
{
    if (bytes <= c->workspace_size)
        return IMS_OK;
    if (c->workspace) {
        IMS_CUDA_CHECK(err, cudaStreamSynchronize(stream)); /* no convolution may still use it */
        IMS_CUDA_CHECK(err, cudaFree(c->workspace));
        c->workspace = NULL;
        c->workspace_size = 0;
    }
    IMS_CUDA_CHECK(err, cudaMalloc(&c->workspace, bytes));
    c->workspace_size = bytes;
    return IMS_OK;
}

static ims_status plan_descriptors(conv_plan *pl, ims_error *err)
{
    const imsi_conv_key *k = &pl->key;
    cudnnDataType_t dt = k->precision == IMS_PRECISION_FP16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    int oh = (k->h + 2 * k->ph - k->kh) / k->sh + 1, ow = (k->w + 2 * k->pw - k->kw) / k->sw + 1;
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&pl->x));
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&pl->y));
    IMS_CUDNN_CHECK(err, cudnnCreateTensorDescriptor(&pl->bias));
    IMS_CUDNN_CHECK(err, cudnnCreateFilterDescriptor(&pl->w));
    IMS_CUDNN_CHECK(err, cudnnCreateConvolutionDescriptor(&pl->conv));
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptor(pl->x, CUDNN_TENSOR_NHWC, dt, k->n, k->c, k->h, k->w));
    /* (N, O, OH, OW) inside an (N, OH, OW, Ctot) tensor */
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptorEx(pl->y, dt, k->n, k->o, oh, ow, oh * ow * k->y_channels, 1,
                                                      ow * k->y_channels, k->y_channels));
    IMS_CUDNN_CHECK(err, cudnnSetTensor4dDescriptor(pl->bias, CUDNN_TENSOR_NHWC, dt, 1, k->o, 1, 1));
    IMS_CUDNN_CHECK(err, cudnnSetFilter4dDescriptor(pl->w, dt, CUDNN_TENSOR_NHWC, k->o, k->c, k->kh, k->kw));
    IMS_CUDNN_CHECK(err, cudnnSetConvolution2dDescriptor(pl->conv, k->ph, k->pw, k->sh, k->sw, 1, 1,
                                                         CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    IMS_CUDNN_CHECK(err, cudnnSetConvolutionMathType(pl->conv, k->precision == IMS_PRECISION_FP32
                                                                   ? CUDNN_FMA_MATH
                                                                   : CUDNN_TENSOR_OP_MATH));
    return IMS_OK;
}

/* Measures the algorithms on the real buffers and keeps the fastest usable one. */
static ims_status plan_choose(imsi_cudnn_convs *c, conv_plan *pl, cudnnHandle_t handle, cudaStream_t stream,
                              const void *x, const void *w, void *y, ims_error *err)
{
    ims_status st = workspace_reserve(c, stream, IMS_CUDNN_WORKSPACE_MAX, err);
    if (st) {
        /* not enough memory for the search's workspace: search without one */
        (void)cudaGetLastError();
        c->workspace_size = 0;
    }
    cudnnConvolutionFwdAlgoPerf_t perf[IMS_CUDNN_FIND_COUNT];
    int returned = 0;
    IMS_CUDNN_CHECK(err, cudnnFindConvolutionForwardAlgorithmEx(handle, pl->x, x, pl->w, w, pl->conv, pl->y, y,
                                                                IMS_CUDNN_FIND_COUNT, &returned, perf,
                                                                c->workspace, c->workspace_size));
    for (int i = 0; i < returned; i++) {
        imsi_conv_candidate cand = {(int)perf[i].algo, perf[i].status == CUDNN_STATUS_SUCCESS, (int)perf[i].mathType,
                                    perf[i].memory};
        if (!imsi_conv_candidate_usable(&pl->key, &cand, c->workspace_size))
            continue;
        pl->algo = perf[i].algo;
        pl->workspace = perf[i].memory;
        /* the result's math type (fp32: FMA, the descriptor's already) */
        IMS_CUDNN_CHECK(err, cudnnSetConvolutionMathType(pl->conv, perf[i].mathType));
        return IMS_OK;
    }
    return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                         "cuDNN has no forward algorithm for a %dx%d convolution of (%d, %d, %d, %d) into %d of %d "
                         "channels (%s)", pl->key.kh, pl->key.kw, pl->key.n, pl->key.h, pl->key.w, pl->key.c, pl->key.o,
                         pl->key.y_channels, ims_precision_name((ims_precision)pl->key.precision));
}

static conv_plan *plan_find(imsi_cudnn_convs *c, const imsi_conv_key *key)
{
    for (size_t i = 0; i < c->count; i++)
        if (imsi_conv_key_equal(&c->plans[i].key, key))
            return &c->plans[i];
    return NULL;
}

ims_status imsi_cuda_op_conv2d(imsi_cuda_ctx *cuda, const imsi_conv2d_params *p, const imsi_tensor *x,
                               const imsi_tensor *w, const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    imsi_cudnn_convs **cache = &cuda->convs; /* created on first use */
    cudnnHandle_t handle = cuda->cudnn;
    cudaStream_t stream = cuda->stream;
    if (!*cache) {
        ims_status st = cache_create(cache, err);
        if (st)
            return st;
    }
    imsi_cudnn_convs *c = *cache; /* the fused call needs the bias, which the op requires */
    size_t elem = ims_dtype_size(y->dtype);
    void *yp = (char *)y->data + (size_t)p->y_channel_offset * elem; /* the slice's first channel */
    imsi_conv_key key;
    imsi_conv_key_make(&key, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3], (int)w->shape[0],
                       (int)w->shape[1], (int)w->shape[2], p->stride_h, p->stride_w, p->pad_h, p->pad_w,
                       (int)y->shape[3], (int)p->precision, p->relu, x->data, w->data, bias->data, yp);

    conv_plan *pl = plan_find(c, &key);
    if (!pl) {
        if (c->count == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 64;
            conv_plan *grown = realloc(c->plans, cap * sizeof *grown);
            if (!grown)
                return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            c->plans = grown;
            c->cap = cap;
        }
        pl = &c->plans[c->count];
        memset(pl, 0, sizeof *pl);
        pl->key = key;
        ims_status st = plan_descriptors(pl, err);
        if (!st) st = plan_choose(c, pl, handle, stream, x->data, w->data, yp, err);
        if (st) {
            plan_destroy(pl);
            return st;
        }
        c->count++;
    }
    ims_status st = workspace_reserve(c, stream, pl->workspace, err);
    if (st)
        return st;
    const float one = 1.0f, zero = 0.0f;
    IMS_CUDNN_CHECK(err, cudnnConvolutionBiasActivationForward(handle, &one, pl->x, x->data, pl->w, w->data, pl->conv,
                                                               pl->algo, c->workspace, pl->workspace, &zero, pl->y,
                                                               yp, pl->bias, bias->data,
                                                               p->relu ? c->relu : c->identity, pl->y, yp));
    return IMS_OK;
}
