/* backend/cpu.c: the CPU backend: host memory, synchronous ops from kernels/cpu.
 *
 * The kernels never allocate: an op asks its kernel how much scratch it needs
 * and takes it from this backend's arena, one buffer grown (never shrunk) to
 * the largest request and freed with the backend. So an op either gets its
 * scratch or returns IMS_ERR_NOMEM before any work, and a forward pass stops
 * allocating after its first batch. A backend runs one op at a time (its one
 * stream, backend.h), so one arena serves every op.
 */
#include "backend/backend.h"

#include "kernels/cpu/ops_cpu.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct cpu_state {
    void *arena; /* the ops' scratch, 64-byte aligned; NULL until an op needs one */
    size_t arena_bytes;
    size_t arena_limit; /* tests: larger requests fail as if out of memory; 0: none */
    imsi_onednn *onednn; /* convolutions through oneDNN; NULL: the reference path (conv2d.c) */
    int strict;          /* imsi_backend_cpu_set_strict: every op on its reference kernels */
} cpu_state;

/* The threads of the BERT row ops: OpenMP's in strict mode; else one, as a
 * parallel region between two OpenBLAS calls costs more than it saves (its
 * threads spin against OpenBLAS's: bench/RESULTS.md, text encoder). */
static int row_threads(const ims_backend *be)
{
    const cpu_state *st = be->impl;
    return st->strict ? cpu_threads() : 1;
}

static int fast_f32(const ims_backend *be, const imsi_tensor *x)
{
    const cpu_state *st = be->impl;
    return !st->strict && x->dtype == IMS_DTYPE_F32;
}

static void cpu_destroy(ims_backend *be)
{
    cpu_state *st = be->impl;
    if (st) {
        free(st->arena);
        imsi_onednn_free(st->onednn);
    }
    free(st);
    free(be);
}

/* The arena, grown to at least nbytes (*out NULL when nbytes is 0). */
static ims_status cpu_scratch(ims_backend *be, size_t nbytes, const char *op, void **out, ims_error *err)
{
    cpu_state *st = be->impl;
    *out = NULL;
    if (nbytes == 0)
        return IMS_OK;
    if (st->arena_bytes < nbytes) {
        free(st->arena);
        st->arena = NULL;
        st->arena_bytes = 0;
        size_t rounded = (nbytes + 63) & ~(size_t)63;
        int refused = st->arena_limit && nbytes > st->arena_limit;
        if (rounded < nbytes || refused || !(st->arena = aligned_alloc(64, rounded)))
            return ims_error_set(err, IMS_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch memory", op, nbytes);
        st->arena_bytes = rounded;
    }
    *out = st->arena;
    return IMS_OK;
}

static ims_status cpu_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    (void)be;
    /* 64-byte alignment, as the weight file guarantees for mapped tensors. */
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes || !(*out = aligned_alloc(64, rounded)))
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu bytes of host memory", nbytes);
    return IMS_OK;
}

static void cpu_dealloc(ims_backend *be, void *ptr)
{
    cpu_state *st = be->impl;
    imsi_onednn_forget(st->onednn, ptr); /* a filter freed: its reordered copy goes too */
    free(ptr);
}

static ims_status cpu_copy(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err)
{
    (void)be, (void)err;
    memmove(dst, src, nbytes);
    return IMS_OK;
}

static ims_status cpu_fill_bytes(ims_backend *be, void *dst, int byte, size_t nbytes, ims_error *err)
{
    (void)be, (void)err;
    memset(dst, byte, nbytes);
    return IMS_OK;
}

static ims_status cpu_synchronize(ims_backend *be, ims_error *err)
{
    (void)be, (void)err;
    return IMS_OK;
}

static ims_status cpu_convert(ims_backend *be, const imsi_tensor *src, imsi_tensor *dst, ims_error *err)
{
    (void)be, (void)err;
    size_t n = (size_t)imsi_tensor_numel(src);
    if (src->dtype == dst->dtype)
        memmove(dst->data, src->data, imsi_tensor_nbytes(src));
    else if (src->dtype == IMS_DTYPE_F32)
        imsi_cpu_convert_f32_to_f16(src->data, dst->data, n);
    else
        imsi_cpu_convert_f16_to_f32(src->data, dst->data, n);
    return IMS_OK;
}

static ims_status cpu_l2_normalize_op(ims_backend *be, const imsi_tensor *x, imsi_tensor *y,
                                      imsi_tensor *norms, ims_error *err)
{
    (void)be, (void)err;
    int f16 = y->dtype == IMS_DTYPE_F16;
    imsi_cpu_l2_normalize_rows(x->data, f16 ? NULL : y->data, f16 ? y->data : NULL, norms->data,
                               (int)x->shape[0], (int)x->shape[1]);
    return IMS_OK;
}

static ims_status cpu_linear_op(ims_backend *be, const imsi_tensor *x, const imsi_tensor *w,
                                const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    int f16 = x->dtype == IMS_DTYPE_F16, m = (int)x->shape[0], n = (int)w->shape[0], k = (int)x->shape[1];
    void *scratch;
    ims_status st = cpu_scratch(be, imsi_cpu_linear_scratch_bytes(f16, m, n, k), "linear", &scratch, err);
    if (st)
        return st;
    imsi_cpu_linear(x->data, w->data, bias ? bias->data : NULL, y->data, f16, m, n, k, scratch);
    return IMS_OK;
}

/* ---- Benchmarks --------------------------------------------------------------------- */

/* The library's one clock (core/clock.c), in milliseconds. */
static double cpu_clock_ms(void) { return 1e3 * ims_clock_seconds(); }

/* The CPU runs ops synchronously: a mark is the clock when it is queued. */
static ims_status cpu_timer_create(ims_backend *be, void **timer, ims_error *err)
{
    (void)be;
    if (!(*timer = calloc(2, sizeof(double))))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    return IMS_OK;
}

static ims_status cpu_timer_mark(ims_backend *be, void *timer, int stop, ims_error *err)
{
    (void)be, (void)err;
    ((double *)timer)[stop ? 1 : 0] = cpu_clock_ms();
    return IMS_OK;
}

static ims_status cpu_timer_elapsed_ms(ims_backend *be, void *timer, double *ms, ims_error *err)
{
    (void)be, (void)err;
    *ms = ((double *)timer)[1] - ((double *)timer)[0];
    return IMS_OK;
}

static void cpu_timer_free(ims_backend *be, void *timer)
{
    (void)be;
    free(timer);
}

/* Copy bandwidth: every thread copies its slice of a buffer much larger than
 * the caches; GEMM: OpenBLAS sgemm on square matrices. Best of a few runs. */
static ims_status cpu_measure_peaks(ims_backend *be, int quick, ims_backend_peaks *out, ims_error *err)
{
    (void)be;
    size_t bytes = (quick ? 64u : 256u) << 20;
    int n = quick ? 1024 : 2048;
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b);
    float *c = malloc((size_t)n * n * sizeof *c);
    ims_status st = src && dst && a && b && c ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory for peaks");
    if (!st) {
        for (size_t i = 0; i < bytes; i++)
            src[i] = (unsigned char)(i * 131 + 7);
        memset(dst, 1, bytes); /* touch every page before timing */
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = cpu_clock_ms();
            int chunks = 64;
#pragma omp parallel for schedule(static)
            for (int k = 0; k < chunks; k++) {
                size_t lo = bytes / (size_t)chunks * (size_t)k, hi = k == chunks - 1 ? bytes : lo + bytes / (size_t)chunks;
                memcpy(dst + lo, src + lo, hi - lo);
            }
            double t = cpu_clock_ms() - t0;
            best = t < best ? t : best;
        }
        out->copy_gb_per_s = 2.0 * (double)bytes / (best * 1e-3) / 1e9;
        snprintf(out->copy_what, sizeof out->copy_what, "memcpy of %zu MiB, %d threads (read + write)", bytes >> 20,
                 be->info.threads);
        for (size_t i = 0; i < (size_t)n * n; i++) {
            a[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
            b[i] = (float)((i * 53) % 103) / 103.0f - 0.5f;
        }
        best = 1e30;
        for (int rep = 0; rep < 6; rep++) { /* the best of several: a CPU ceiling is noisy */
            double t0 = cpu_clock_ms();
            imsi_cpu_linear(a, b, NULL, c, 0, n, n, n, NULL); /* f32: no scratch */
            double t = cpu_clock_ms() - t0;
            best = t < best ? t : best;
        }
        out->gemm_tflop_per_s = 2.0 * n * (double)n * n / (best * 1e-3) / 1e12;
        snprintf(out->gemm_what, sizeof out->gemm_what, "sgemm %d x %d x %d (fp32)", n, n, n);
    }
    free(src);
    free(dst);
    free(a);
    free(b);
    free(c);
    return st;
}

static ims_status cpu_conv2d_op(ims_backend *be, const imsi_conv2d_params *p, const imsi_tensor *x,
                                const imsi_tensor *w, const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    imsi_cpu_conv2d_shape s = {
        .n = (int)x->shape[0], .h = (int)x->shape[1], .w = (int)x->shape[2], .c = (int)x->shape[3],
        .o = (int)w->shape[0], .kh = (int)w->shape[1], .kw = (int)w->shape[2],
        .sh = p->stride_h, .sw = p->stride_w, .ph = p->pad_h, .pw = p->pad_w,
        .oh = (int)y->shape[1], .ow = (int)y->shape[2],
    };
    cpu_state *cs = be->impl;
    int y_channels = (int)y->shape[3];
    void *scratch;
    ims_status st = IMS_ERR_UNSUPPORTED;
    if (cs->onednn && !cs->strict) {
        st = cpu_scratch(be, imsi_onednn_conv2d_scratch_bytes(&s, y_channels), "conv2d", &scratch, err);
        if (!st)
            st = imsi_onednn_conv2d_nhwc(cs->onednn, &s, x->data, w->data, bias ? bias->data : NULL, p->relu, y->data,
                                         y_channels, p->y_channel_offset, scratch, err);
        if (st != IMS_ERR_UNSUPPORTED)
            return st;
    }
    /* The reference path (strict mode, no oneDNN, or a shape oneDNN leaves to
     * its reference kernel): one image's im2col rows, if the shape needs them. */
    if ((st = cpu_scratch(be, imsi_cpu_conv2d_scratch_bytes(&s), "conv2d", &scratch, err)) != IMS_OK)
        return st;
    imsi_cpu_conv2d_nhwc(&s, x->data, w->data, bias ? bias->data : NULL, p->relu, y->data, y_channels,
                         p->y_channel_offset, scratch);
    return IMS_OK;
}

static ims_status cpu_pool2d_op(ims_backend *be, const imsi_pool2d_params *p, const imsi_tensor *x, imsi_tensor *y,
                                ims_error *err)
{
    (void)be, (void)err;
    imsi_cpu_pool2d_nhwc(x->data, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3],
                         p->kind == IMS_POOL_MAX, p->k, p->stride, p->pad, p->count_include_pad, y->data,
                         (int)y->shape[1], (int)y->shape[2], (int)y->shape[3], p->y_channel_offset);
    return IMS_OK;
}

static ims_status cpu_global_avg_pool_op(ims_backend *be, const imsi_tensor *x, imsi_tensor *y, ims_error *err)
{
    (void)be, (void)err;
    imsi_cpu_global_avg_pool_nhwc(x->data, (int)x->shape[0], (int)(x->shape[1] * x->shape[2]), (int)x->shape[3],
                                  y->data);
    return IMS_OK;
}

static ims_status cpu_input_u8_op(ims_backend *be, const imsi_tensor *x, const float scale[3], const float shift[3],
                                  imsi_tensor *y, ims_error *err)
{
    (void)be, (void)err;
    imsi_cpu_input_u8(x->data, (size_t)(x->shape[0] * x->shape[1] * x->shape[2]), scale, shift, y->data);
    return IMS_OK;
}

static ims_status cpu_knn_select_op(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries, int k,
                                    int path, imsi_tensor *ids, imsi_tensor *scores, ims_error *err)
{
    int f16 = table->dtype == IMS_DTYPE_F16, d = (int)table->shape[1], b = (int)queries->shape[0];
    int64_t n = table->shape[0];
    /* GEMM_F16 over f16 rows (the prefilter's first pass): the queries rounded
     * to f16, as the CUDA path's tensor-core GEMM takes them; every other path
     * is the one exact CPU path. */
    int round_q = f16 && path == IMS_KNN_PATH_GEMM_F16;
    size_t select_bytes = imsi_cpu_knn_scratch_bytes(f16, n, d, b, k), select_room = (select_bytes + 63) / 64 * 64;
    void *scratch;
    ims_status st = cpu_scratch(be, select_room + (round_q ? (size_t)b * d * sizeof(float) : 0), "knn", &scratch, err);
    if (st)
        return st;
    const float *q = queries->data;
    if (round_q) {
        float *q16 = (float *)((char *)scratch + select_room);
        for (size_t i = 0; i < (size_t)b * d; i++)
            q16[i] = ims_f16_to_f32(ims_f32_to_f16(q[i]));
        q = q16;
    }
    imsi_cpu_knn_select(f16 ? NULL : table->data, f16 ? table->data : NULL, n, d, q, b, k, ids->data, scores->data,
                        scratch);
    return IMS_OK;
}

static ims_status cpu_knn_rescore_op(ims_backend *be, const imsi_tensor *table, const imsi_tensor *queries,
                                     const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                                     int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err)
{
    int f16 = table->dtype == IMS_DTYPE_F16, c = (int)cand->shape[1];
    void *scratch;
    ims_status st = cpu_scratch(be, imsi_cpu_knn_rescore_scratch_bytes(c), "knn rescore", &scratch, err);
    if (st)
        return st;
    imsi_cpu_knn_rescore(f16 ? NULL : table->data, f16 ? table->data : NULL, table->shape[0], (int)table->shape[1],
                         queries->data, (int)queries->shape[0], cand->data, cand_scores->data, c, margin->data, k,
                         ids->data, scores->data, ok->data, scratch);
    return IMS_OK;
}


static ims_status cpu_embed_layernorm_op(ims_backend *be, const imsi_tensor *ids, const imsi_tensor *word,
                                         const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                         const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err)
{
    int b = (int)ids->shape[0], t = (int)ids->shape[1], h = (int)word->shape[1], vocab = (int)word->shape[0];
    int threads = row_threads(be);
    void *scratch;
    ims_status st = cpu_scratch(be, imsi_cpu_embed_layernorm_scratch_bytes(h, threads), "embed", &scratch, err);
    if (st)
        return st;
    int64_t bad = imsi_cpu_embed_layernorm(ids->data, word->data, pos->data, type->data, gamma->data, beta->data,
                                           eps, y->data, y->dtype == IMS_DTYPE_F16, b, t, h, vocab, scratch, threads);
    if (bad >= 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "embed: token id %d at sequence %lld, position %lld is outside "
                             "the vocabulary of %d", (int)((const int32_t *)ids->data)[bad], (long long)(bad / t),
                             (long long)(bad % t), vocab);
    return IMS_OK;
}

static ims_status cpu_bias_act_op(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                                  imsi_tensor *y, ims_error *err)
{
    (void)err;
    if (fast_f32(be, x))
        imsi_cpu_bias_act_fast(x->data, bias->data, y->data, act == IMS_ACT_GELU, (int)x->shape[0], (int)x->shape[1]);
    else
        imsi_cpu_bias_act(x->data, bias->data, y->data, x->dtype == IMS_DTYPE_F16, act == IMS_ACT_GELU,
                          (int)x->shape[0], (int)x->shape[1]);
    return IMS_OK;
}

static ims_status cpu_add_layernorm_op(ims_backend *be, const imsi_tensor *x, const imsi_tensor *bias,
                                       const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                       double eps, imsi_tensor *y, ims_error *err)
{
    int m = (int)x->shape[0], h = (int)x->shape[1], threads = row_threads(be);
    void *scratch;
    ims_status st = cpu_scratch(be, imsi_cpu_add_layernorm_scratch_bytes(h, threads), "add_layernorm", &scratch, err);
    if (st)
        return st;
    imsi_cpu_add_layernorm(x->data, bias ? bias->data : NULL, residual->data, gamma->data, beta->data, eps, y->data,
                           x->dtype == IMS_DTYPE_F16, m, h, scratch, threads);
    return IMS_OK;
}

static ims_status cpu_attention_op(ims_backend *be, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                                   imsi_tensor *scores, imsi_tensor *ctx, ims_error *err)
{
    (void)scores; /* the CPU keeps one query's scores at a time in its scratch */
    int b = (int)qkv->shape[0], t = (int)qkv->shape[1], h = (int)(qkv->shape[2] / 3), threads = cpu_threads();
    void *scratch;
    if (fast_f32(be, qkv)) {
        ims_status st = cpu_scratch(be, imsi_cpu_attention_fast_scratch_bytes(t, h, heads), "attention", &scratch, err);
        if (!st)
            imsi_cpu_attention_fast(qkv->data, lengths->data, ctx->data, b, t, h, heads, scratch);
        return st;
    }
    ims_status st = cpu_scratch(be, imsi_cpu_attention_scratch_bytes(t, h, heads, threads), "attention", &scratch,
                                err);
    if (st)
        return st;
    imsi_cpu_attention(qkv->data, lengths->data, ctx->data, qkv->dtype == IMS_DTYPE_F16, b, t, h, heads, scratch,
                       threads);
    return IMS_OK;
}

static ims_status cpu_pool_normalize_op(ims_backend *be, const imsi_tensor *x, const imsi_tensor *lengths,
                                        imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err)
{
    int h = (int)x->shape[2], threads = row_threads(be);
    void *scratch;
    ims_status st = cpu_scratch(be, imsi_cpu_pool_normalize_scratch_bytes(h, threads), "pool_normalize", &scratch,
                                err);
    if (st)
        return st;
    imsi_cpu_pool_normalize(x->data, lengths->data, y->data, x->dtype == IMS_DTYPE_F16, pooling == IMS_POOLING_CLS,
                            normalize, (int)x->shape[0], (int)x->shape[1], h, scratch, threads);
    return IMS_OK;
}

static const imsi_backend_ops cpu_ops = {
    /* required */
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .host_alloc = cpu_alloc, /* host memory is this backend's memory */
    .host_free = cpu_dealloc,
    .upload = cpu_copy,
    .download = cpu_copy,
    .fill_bytes = cpu_fill_bytes,
    .synchronize = cpu_synchronize,
    .convert = cpu_convert,
    .l2_normalize_rows = cpu_l2_normalize_op,
    .linear = cpu_linear_op,
    .knn_select = cpu_knn_select_op,
    .conv2d = cpu_conv2d_op,
    .pool2d = cpu_pool2d_op,
    .global_avg_pool = cpu_global_avg_pool_op,
    .input_u8 = cpu_input_u8_op,
    .embed_layernorm = cpu_embed_layernorm_op,
    .bias_act = cpu_bias_act_op,
    .add_layernorm = cpu_add_layernorm_op,
    .attention = cpu_attention_op,
    .pool_normalize = cpu_pool_normalize_op,
    /* optional */
    .timer_create = cpu_timer_create,
    .timer_mark = cpu_timer_mark,
    .timer_elapsed_ms = cpu_timer_elapsed_ms,
    .timer_free = cpu_timer_free,
    .measure_peaks = cpu_measure_peaks,
    .upload_async = cpu_copy,
    .knn_rescore = cpu_knn_rescore_op,
};

void imsi_backend_cpu_limit_scratch(ims_backend *be, size_t max_bytes)
{
    cpu_state *st = be->impl;
    st->arena_limit = max_bytes;
    free(st->arena); /* the next op allocates under the new limit */
    st->arena = NULL;
    st->arena_bytes = 0;
}

void imsi_backend_cpu_set_strict(ims_backend *be, int strict)
{
    cpu_state *st = be->impl;
    st->strict = strict != 0;
}

/* The "model name" line of /proc/cpuinfo, or "unknown CPU". */
static void cpu_model_name(char *buf, size_t size)
{
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

ims_status imsi_backend_cpu_create(ims_backend **out, ims_error *err)
{
    ims_backend *be = calloc(1, sizeof *be);
    cpu_state *st = calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate the CPU backend");
    }
    be->impl = st;
    be->ops = &cpu_ops;
    be->memory = IMS_MEMORY_HOST;
    be->info.kind = IMS_BACKEND_CPU;
    snprintf(be->info.name, sizeof be->info.name, "cpu");
    cpu_model_name(be->info.device, sizeof be->info.device);
#ifdef _OPENMP
    be->info.threads = omp_get_max_threads();
#else
    be->info.threads = 1;
#endif
    /* Convolutions through oneDNN where the build has it (not in strict mode).
     * IMS_CPU_STRICT=1 makes a backend strict from its creation, for whole
     * programs (the strict Inception goldens, bench/compare_cpu_inception.py). */
    ims_error ignored = {0};
    if (imsi_onednn_create(&st->onednn, &ignored) != IMS_OK)
        st->onednn = NULL;
    const char *strict = getenv("IMS_CPU_STRICT");
    st->strict = strict && !strcmp(strict, "1");
    *out = be;
    return IMS_OK;
}
