/* kernels/cuda/conv_plan.c: the cuDNN convolution's plan keys and candidate
 * rules (conv_plan.h); plain C, built with or without CUDA. */
#include "kernels/cuda/conv_plan.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void imsi_conv_key_make(imsi_conv_key *key, int n, int h, int w, int c, int o, int kh, int kw, int sh, int sw, int ph,
                        int pw, int y_channels, int precision, int relu, const void *x, const void *wt,
                        const void *bias, const void *y)
{
    memset(key, 0, sizeof *key); /* compared with memcmp */
    key->n = n, key->h = h, key->w = w, key->c = c;
    key->o = o, key->kh = kh, key->kw = kw;
    key->sh = sh, key->sw = sw, key->ph = ph, key->pw = pw;
    key->y_channels = y_channels, key->precision = precision, key->relu = relu != 0;
    key->x_align = (int)((uintptr_t)x % 16), key->w_align = (int)((uintptr_t)wt % 16);
    key->bias_align = (int)((uintptr_t)bias % 16), key->y_align = (int)((uintptr_t)y % 16);
}

int imsi_conv_out(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

int imsi_conv_max_batch(int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow, int64_t y_channels)
{
    const int64_t limit = INT32_MAX; /* elements per tensor, 2^31 - 1 */
    if (h < 1 || w < 1 || c < 1 || oh < 1 || ow < 1 || y_channels < 1 || h > limit || w > limit || c > limit ||
        oh > limit || ow > limit || y_channels > limit)
        return 0;
    int64_t x_image = h * w, y_image = oh * ow; /* each < 2^62 */
    if (x_image > limit / c || y_image > limit / y_channels)
        return 0;
    x_image *= c;
    y_image *= y_channels;
    int64_t per = limit / (x_image > y_image ? x_image : y_image);
    return (int)per;
}

int imsi_conv_key_equal(const imsi_conv_key *a, const imsi_conv_key *b) { return !memcmp(a, b, sizeof *a); }

int imsi_conv_candidate_usable(const imsi_conv_key *key, int mode, const imsi_conv_candidate *c, size_t workspace_max)
{
    if (!c->ok || c->memory > workspace_max)
        return 0;
    if (key->precision == IMS_PRECISION_FP32) {
        /* fp32 is the reference the other precisions are measured against:
         * FMA math only (DEFAULT_MATH lets cuDNN use TF32 on Ampere and
         * Hopper), and algorithms that sum the products directly (FFT and the
         * large-tile Winograd transforms add errors of their own, ~1e-5). */
        if (c->math != IMSI_CONV_MATH_FMA)
            return 0;
        if (c->algo == IMSI_CONV_ALGO_FFT || c->algo == IMSI_CONV_ALGO_FFT_TILING ||
            c->algo == IMSI_CONV_ALGO_WINOGRAD_NONFUSED)
            return 0;
    } else if (key->precision == IMS_PRECISION_TF32 && c->math == IMSI_CONV_MATH_TENSOR_OP_ALLOW_CONVERSION) {
        return 0; /* it may convert f32 data to f16 (a 5-bit exponent): TF32 keeps f32's range */
    }
    /* the fused call takes an IDENTITY activation with this algorithm only */
    if (mode == IMSI_CONV_MODE_FUSED && !key->relu && c->algo != IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM)
        return 0;
    return 1;
}

int imsi_conv_search(imsi_conv_plan *pl, int force_fallback, size_t workspace_max, const imsi_conv_search_ops *ops,
                     ims_error *err)
{
    pl->mode = IMSI_CONV_MODE_NONE;
    pl->tried_fused = pl->tried_fallback = 0;
    memset(&pl->cand, 0, sizeof pl->cand);
    for (int mode = IMSI_CONV_MODE_FUSED; mode <= IMSI_CONV_MODE_FALLBACK; mode++) {
        if (mode == IMSI_CONV_MODE_FUSED && force_fallback)
            continue;
        imsi_conv_candidate cands[IMSI_CONV_MAX_CANDIDATES];
        int n = ops->gather(ops->ctx, pl->impl, mode, cands, IMSI_CONV_MAX_CANDIDATES, err);
        if (n < 0)
            return -1;
        for (int i = 0; i < n && i < IMSI_CONV_MAX_CANDIDATES; i++) {
            if (!imsi_conv_candidate_usable(&pl->key, mode, &cands[i], workspace_max))
                continue;
            int seen = 0; /* the same algorithm and math type once */
            for (int j = 0; j < i && !seen; j++)
                seen = imsi_conv_candidate_usable(&pl->key, mode, &cands[j], workspace_max) &&
                       cands[j].algo == cands[i].algo && cands[j].math == cands[i].math;
            if (seen)
                continue;
            *(mode == IMSI_CONV_MODE_FUSED ? &pl->tried_fused : &pl->tried_fallback) += 1;
            imsi_conv_candidate c = cands[i];
            if (ops->attempt(ops->ctx, pl->impl, mode, &c)) {
                pl->mode = mode;
                pl->cand = c;
                return 1;
            }
        }
    }
    return 1;
}

const imsi_conv_plan *imsi_conv_cache_nearest(const imsi_conv_cache *cache, const imsi_conv_key *key)
{
    const imsi_conv_plan *best = NULL;
    imsi_conv_key k = *key;
    for (size_t i = 0; i < cache->count; i++) {
        const imsi_conv_plan *pl = &cache->plans[i];
        k.n = pl->key.n;
        if (pl->mode == IMSI_CONV_MODE_NONE || !imsi_conv_key_equal(&pl->key, &k))
            continue;
        long d = labs((long)pl->key.n - key->n), db = best ? labs((long)best->key.n - key->n) : 0;
        if (!best || d < db || (d == db && pl->key.n > best->key.n))
            best = pl;
    }
    return best;
}

static void failure_text(imsi_conv_plan *pl, int force_fallback)
{
    const imsi_conv_key *k = &pl->key;
    snprintf(pl->failure, sizeof pl->failure,
             "cuDNN runs no %dx%d convolution of (%d, %d, %d, %d) into %d of %d channels (%s%s): tried %d "
             "algorithms fused%s and %d into a packed buffer",
             k->kh, k->kw, k->n, k->h, k->w, k->c, k->o, k->y_channels,
             ims_precision_name((ims_precision)k->precision), k->relu ? ", ReLU" : "", pl->tried_fused,
             force_fallback ? " (fused calls forced off)" : "", pl->tried_fallback);
}

ims_status imsi_conv_cache_get(imsi_conv_cache *cache, const imsi_conv_key *key, int capturing, int force_fallback,
                               size_t workspace_max, const imsi_conv_search_ops *ops, imsi_conv_plan **out,
                               ims_error *err)
{
    *out = NULL;
    for (size_t i = 0; i < cache->count; i++) {
        imsi_conv_plan *pl = &cache->plans[i];
        if (imsi_conv_key_equal(&pl->key, key)) {
            if (pl->mode == IMSI_CONV_MODE_NONE)
                return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s", pl->failure);
            *out = pl;
            return IMS_OK;
        }
    }
    if (capturing)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                             "conv2d: no plan for a %dx%d convolution of batch %d yet, and cuDNN's search cannot run "
                             "during graph capture (run the batch once first)", key->kh, key->kw, key->n);
    if (cache->count == cache->cap) {
        size_t cap = cache->cap ? 2 * cache->cap : 64;
        imsi_conv_plan *grown = realloc(cache->plans, cap * sizeof *grown);
        if (!grown)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        cache->plans = grown;
        cache->cap = cap;
    }
    imsi_conv_plan *pl = &cache->plans[cache->count];
    memset(pl, 0, sizeof *pl);
    pl->key = *key;
    ims_status st = ops->prepare(ops->ctx, key, &pl->impl, err);
    if (st)
        return st;
    const imsi_conv_plan *near = imsi_conv_cache_nearest(cache, key);
    if (near && !(force_fallback && near->mode == IMSI_CONV_MODE_FUSED)) {
        imsi_conv_candidate c = near->cand;
        if (ops->attempt(ops->ctx, pl->impl, near->mode, &c)) {
            pl->mode = near->mode;
            pl->cand = c;
            pl->from_batch = near->key.n;
            cache->reuses++;
            cache->count++;
            *out = pl;
            return IMS_OK;
        }
    }
    cache->searches++;
    if (imsi_conv_search(pl, force_fallback, workspace_max, ops, err) < 0) {
        ops->release(ops->ctx, pl->impl);
        return err && err->code != IMS_OK ? err->code : IMS_ERR_CUDA;
    }
    cache->count++;
    if (pl->mode == IMSI_CONV_MODE_NONE) {
        /* kept, so that later calls fail at once instead of searching again */
        failure_text(pl, force_fallback);
        ops->release(ops->ctx, pl->impl);
        pl->impl = NULL;
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s", pl->failure);
    }
    *out = pl;
    return IMS_OK;
}

void imsi_conv_cache_free(imsi_conv_cache *cache, const imsi_conv_search_ops *ops)
{
    for (size_t i = 0; i < cache->count; i++)
        if (cache->plans[i].impl)
            ops->release(ops->ctx, cache->plans[i].impl);
    free(cache->plans);
    memset(cache, 0, sizeof *cache);
}
