/* test_cuda_logic.c: what the CUDA backend decides without a device, checked
 * on the CPU (ctest label unit; every build, none of it needs CUDA headers).
 *
 * The GPU code keeps such decisions in plain C functions so that CI, which
 * has no GPU, tests them:
 * - library statuses as ims_status (a cuDNN 9 device allocation failure is
 *   IMS_ERR_NOMEM);
 * - the k-NN op's scratch layout: every part 16-byte aligned, no overlaps,
 *   inside the index layer's estimate;
 * - the cuDNN convolution's plan keys (shapes, precision, activation,
 *   alignment) and its rule for usable algorithms (fp32 stays a reference:
 *   FMA math only);
 * - its search and plan cache on a fake cuDNN: the fused call tried with each
 *   candidate, the fallback where none runs, failures cached, no search
 *   during graph capture, a new batch size taking the nearest batch's choice;
 * - batches split below cuDNN's 2^31-element tensors.
 */
#include "test.h"

#include "backend/cuda_status.h"
#include "kernels/cuda/conv_plan.h"
#include "kernels/cuda/knn_tile.h"

/* ---- The k-NN scratch layout ------------------------------------------------------ */

static void check_layout(int64_t b, int k, int64_t n, int64_t d, int f16, int path)
{
    imsi_knn_layout l;
    int ok = imsi_knn_layout_make(b, k, n, d, f16, path, &l);
    TEST_CHECK(ok, "layout b %lld k %d n %lld d %lld: refused", (long long)b, k, (long long)n, (long long)d);
    if (!ok)
        return;
    size_t tile_bytes = (size_t)b * (size_t)l.ld * 4, cand_bytes = (size_t)b * k * 4, tmp_bytes = (size_t)b * (size_t)imsi_knn_tmp_stride(k) * 8;
    int copy_rows = path == IMS_KNN_PATH_GEMM && f16;
    size_t rows_bytes = copy_rows ? (size_t)l.tile_rows * d * 4 : path == IMS_KNN_PATH_GEMM_F16 ? (size_t)b * d * 2 : 0;
    int aligned = l.tile % 16 == 0 && l.cand % 16 == 0 && l.tmp % 16 == 0 && l.seg % 16 == 0 && l.rows % 16 == 0;
    int ordered = l.tile + tile_bytes <= l.cand && l.cand + cand_bytes <= l.tmp && l.tmp + tmp_bytes <= l.seg &&
                  l.seg + l.seg_bytes <= l.rows && l.rows + l.rows_bytes <= l.total;
    int64_t t_expect = imsi_knn_tile_rows(b, k, n, copy_rows ? d : 0);
    size_t seg_expect = imsi_knn_two_stage(k, l.tile_rows)
                            ? (size_t)b * (size_t)((l.tile_rows + IMS_KNN_SEGMENT - 1) / IMS_KNN_SEGMENT) * k * 8
                        : imsi_knn_partitioned(k, l.tile_rows)
                            ? (size_t)b * (size_t)((l.tile_rows + 8 * (int64_t)k - 1) / (8 * (int64_t)k)) * k * 8
                            : 0;
    size_t estimate = imsi_knn_workspace_bytes(b, k, n, d);
    TEST_CHECK(aligned, "b %lld k %d n %lld d %lld f16 %d path %d: offsets tile %zu cand %zu tmp %zu seg %zu rows %zu "
               "not all multiples of 16", (long long)b, k, (long long)n, (long long)d, f16, path, l.tile, l.cand,
               l.tmp, l.seg, l.rows);
    TEST_CHECK(ordered, "b %lld k %d n %lld d %lld: parts overlap or pass the total", (long long)b, k, (long long)n,
               (long long)d);
    TEST_CHECK(l.tile_rows == t_expect && l.ld == k + l.tile_rows, "tile rows %lld (expected %lld), ld %lld",
               (long long)l.tile_rows, (long long)t_expect, (long long)l.ld);
    TEST_CHECK(l.seg_bytes == seg_expect && l.rows_bytes == rows_bytes, "seg %zu (expected %zu), rows %zu (expected %zu)",
               l.seg_bytes, seg_expect, l.rows_bytes, rows_bytes);
    TEST_CHECK(estimate >= l.total, "b %lld k %d n %lld d %lld path %d: the index layer's estimate %zu < the op's %zu",
               (long long)b, k, (long long)n, (long long)d, path, estimate, l.total);
}

static int key_desc(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a < b) - (a > b);
}

/* The large-k partition scheme of knn_select.cu, on the CPU: partitions of
 * imsi_knn_partition_len(k) cover the tile exactly; each keeps its best
 * min(k, len) keys (padded with 0 keys), and the best kk over the lists are
 * the best kk over the whole tile, in the bitonic stride's room. Keys are
 * (score bucket << 32) | ~row as in knn_keys.cuh: few buckets, many ties. */
static void test_knn_partitions(void)
{
    static const int ks[] = {1025, 2000, 4096, 16384};
    static const int64_t cnts[] = {2 * 8200, 2 * 8200 + 1, 100003, 300000};
    uint64_t rng = 99;
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t ci = 0; ci < sizeof cnts / sizeof cnts[0]; ci++) {
            int k = ks[ki];
            int64_t cnt = cnts[ci], plen = imsi_knn_partition_len(k);
            if (!imsi_knn_partitioned(k, cnt)) {
                TEST_CHECK(cnt < 2 * plen, "k %d cnt %lld: not partitioned", k, (long long)cnt);
                continue;
            }
            int64_t parts = imsi_knn_partitions(k, cnt);
            TEST_CHECK(parts >= 2 && parts * plen >= cnt && (parts - 1) * plen < cnt, "k %d cnt %lld: %lld parts", k,
                       (long long)cnt, (long long)parts);
            TEST_CHECK(imsi_knn_segment_bytes(3, k, cnt) == (size_t)3 * parts * k * 8, "k %d: list bytes", k);
            TEST_CHECK(imsi_knn_tmp_stride(k) >= k && (imsi_knn_tmp_stride(k) & (imsi_knn_tmp_stride(k) - 1)) == 0,
                       "k %d: tmp stride %lld", k, (long long)imsi_knn_tmp_stride(k));
            uint64_t *keys = malloc((size_t)cnt * 8), *lists = malloc((size_t)parts * k * 8), *part = malloc(plen * 8);
            for (int64_t j = 0; j < cnt; j++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                keys[j] = ((uint64_t)(0x80000000u + (uint32_t)(rng >> 60)) << 32) | (uint32_t)~(uint32_t)j;
            }
            for (int64_t p = 0; p < parts; p++) {
                int64_t start = p * plen, len = cnt - start < plen ? cnt - start : plen;
                memcpy(part, keys + start, (size_t)len * 8);
                qsort(part, (size_t)len, 8, key_desc);
                for (int i = 0; i < k; i++)
                    lists[p * k + i] = i < len ? part[i] : 0;
            }
            qsort(keys, (size_t)cnt, 8, key_desc);
            qsort(lists, (size_t)(parts * k), 8, key_desc);
            int kk = k < cnt ? k : (int)cnt;
            TEST_CHECK(!memcmp(keys, lists, (size_t)kk * 8), "k %d cnt %lld: the lists' best differ from the tile's",
                       k, (long long)cnt);
            free(keys), free(lists), free(part);
        }
    printf("knn large-k partitions: checked\n");
}

static void test_knn_layout(void)
{
    static const int64_t bs[] = {1, 3, 16, 17, 255, 1000};
    static const int ks[] = {1, 5, 10, 1000, 1024, 1025, 16384};
    static const int64_t ns[] = {1, 777, 4097, 100003, 10000000};
    static const int64_t ds[] = {7, 384, 2048};
    static const int paths[] = {IMS_KNN_PATH_STREAM, IMS_KNN_PATH_GEMM, IMS_KNN_PATH_GEMM_F16};
    int odd_tmp = 0;
    for (size_t bi = 0; bi < sizeof bs / sizeof *bs; bi++)
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
                for (size_t di = 0; di < sizeof ds / sizeof *ds; di++)
                    for (int f16 = 0; f16 <= 1; f16++)
                        for (size_t pi = 0; pi < sizeof paths / sizeof *paths; pi++) {
                            int path = imsi_knn_resolve_path(paths[pi], bs[bi], f16);
                            check_layout(bs[bi], ks[ki], ns[ni], ds[di], f16, path);
                            odd_tmp += (bs[bi] * ks[ki]) % 2 == 1;
                        }
    /* shapes whose (b, k) u64 keys end 8 bytes past a multiple of 16 are in the grid */
    TEST_CHECK(odd_tmp > 0, "no shape with an odd b * k");
    /* the path rule: AUTO streams up to 16 queries; fp16 GemmEx needs f16 rows */
    TEST_CHECK(imsi_knn_resolve_path(IMS_KNN_PATH_AUTO, 16, 1) == IMS_KNN_PATH_STREAM &&
                   imsi_knn_resolve_path(IMS_KNN_PATH_AUTO, 17, 1) == IMS_KNN_PATH_GEMM &&
                   imsi_knn_resolve_path(IMS_KNN_PATH_GEMM_F16, 100, 0) == IMS_KNN_PATH_GEMM &&
                   imsi_knn_resolve_path(IMS_KNN_PATH_GEMM_F16, 100, 1) == IMS_KNN_PATH_GEMM_F16,
               "knn path resolution");
    imsi_knn_layout l;
    TEST_CHECK(!imsi_knn_layout_make(0, 10, 100, 8, 0, IMS_KNN_PATH_STREAM, &l) &&
                   !imsi_knn_layout_make(4, 10, (int64_t)1 << 40, 8, 0, IMS_KNN_PATH_STREAM, &l),
               "a layout for 0 queries or 2^40 rows was accepted");
    printf("knn layouts: checked\n");
}

/* ---- Convolution: which cuDNN results may run a call ----------------------------- */

/* Fake device addresses: what matters is their value mod 16. */
static const char *const base = (const char *)(uintptr_t)0x7f0000000000ull;

static imsi_conv_key conv_key(int precision, int relu)
{
    imsi_conv_key k;
    imsi_conv_key_make(&k, 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, precision, relu, base, base + 4096,
                       base + 8192, base + 16384);
    return k;
}

/* ---- Convolution: plan keys ------------------------------------------------------- */

static void test_conv_keys(void)
{
    imsi_conv_key a = conv_key(IMS_PRECISION_FP16, 1), b = conv_key(IMS_PRECISION_FP16, 1);
    TEST_CHECK(imsi_conv_key_equal(&a, &b), "equal calls give different keys");
    /* each field decides validity or speed: a change of any one is another plan */
    struct { const char *what; imsi_conv_key k; } other[16];
    int n = 0;
#define OTHER(what_, ...)                                                                                    \
    do {                                                                                                     \
        other[n].what = what_;                                                                               \
        imsi_conv_key_make(&other[n].k, __VA_ARGS__);                                                        \
        n++;                                                                                                 \
    } while (0)
    const int P = IMS_PRECISION_FP16;
    OTHER("batch", 3, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("height", 2, 18, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("in channels", 2, 17, 17, 41, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("out channels", 2, 17, 17, 40, 25, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("filter", 2, 17, 17, 40, 24, 1, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("stride", 2, 17, 17, 40, 24, 3, 3, 1, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("padding", 2, 17, 17, 40, 24, 3, 3, 2, 2, 1, 0, 64, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("y width", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 72, P, 1, base, base + 4096, base + 8192, base + 16384);
    OTHER("precision", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, IMS_PRECISION_TF32, 1, base, base + 4096, base + 8192,
          base + 16384);
    OTHER("activation", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 0, base, base + 4096, base + 8192, base + 16384);
    /* the slice at channel 1 of f16 (2 bytes) and at channel 4 (8 bytes): unaligned */
    OTHER("y at channel 1", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192,
          base + 16384 + 2);
    OTHER("y at channel 4", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192,
          base + 16384 + 8);
    OTHER("x unaligned", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base + 2, base + 4096, base + 8192,
          base + 16384);
    OTHER("bias unaligned", 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8194,
          base + 16384);
#undef OTHER
    for (int i = 0; i < n; i++)
        TEST_CHECK(!imsi_conv_key_equal(&a, &other[i].k), "a call with another %s reuses the plan", other[i].what);
    /* channel 8 of f16 is 16 bytes on: aligned like channel 0, the same plan */
    imsi_conv_key c8;
    imsi_conv_key_make(&c8, 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, P, 1, base, base + 4096, base + 8192,
                       base + 16384 + 16);
    TEST_CHECK(imsi_conv_key_equal(&a, &c8), "a slice 16 bytes on has another key");
    printf("conv keys: %d variants checked\n", n);
}

static void test_conv_candidates(void)
{
    const size_t max = 1000;
    const int F = IMSI_CONV_MODE_FUSED;
    imsi_conv_key f32 = conv_key(IMS_PRECISION_FP32, 1), t32 = conv_key(IMS_PRECISION_TF32, 1);
    imsi_conv_key f16 = conv_key(IMS_PRECISION_FP16, 1), ident = conv_key(IMS_PRECISION_FP16, 0);
    const imsi_conv_candidate fma_gemm = {IMSI_CONV_ALGO_IMPLICIT_GEMM, 1, IMSI_CONV_MATH_FMA, 10};
    const imsi_conv_candidate fma_wino = {IMSI_CONV_ALGO_WINOGRAD, 1, IMSI_CONV_MATH_FMA, 10};
    const imsi_conv_candidate def_gemm = {IMSI_CONV_ALGO_IMPLICIT_GEMM, 1, IMSI_CONV_MATH_DEFAULT, 10};
    const imsi_conv_candidate tc_gemm = {IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM, 1, IMSI_CONV_MATH_TENSOR_OP, 10};
    const imsi_conv_candidate conv_gemm = {IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM, 1,
                                           IMSI_CONV_MATH_TENSOR_OP_ALLOW_CONVERSION, 10};
    const imsi_conv_candidate fma_fft = {IMSI_CONV_ALGO_FFT, 1, IMSI_CONV_MATH_FMA, 10};
    const imsi_conv_candidate fma_fft_tiling = {IMSI_CONV_ALGO_FFT_TILING, 1, IMSI_CONV_MATH_FMA, 10};
    const imsi_conv_candidate fma_nonfused = {IMSI_CONV_ALGO_WINOGRAD_NONFUSED, 1, IMSI_CONV_MATH_FMA, 10};
    const imsi_conv_candidate failed = {IMSI_CONV_ALGO_IMPLICIT_GEMM, 0, IMSI_CONV_MATH_FMA, 10};
    const imsi_conv_candidate big = {IMSI_CONV_ALGO_IMPLICIT_GEMM, 1, IMSI_CONV_MATH_FMA, max + 1};
    const imsi_conv_candidate fits = {IMSI_CONV_ALGO_IMPLICIT_GEMM, 1, IMSI_CONV_MATH_FMA, max};
    TEST_CHECK(imsi_conv_candidate_usable(&f32, F, &fma_gemm, max) && imsi_conv_candidate_usable(&f32, F, &fma_wino, max),
               "fp32: FMA implicit GEMM / fused Winograd refused");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, F, &def_gemm, max), "fp32: DEFAULT_MATH (TF32 on Hopper) accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, F, &tc_gemm, max), "fp32: tensor-op math accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, F, &fma_fft, max) && !imsi_conv_candidate_usable(&f32, F, &fma_fft_tiling, max) &&
                   !imsi_conv_candidate_usable(&f32, F, &fma_nonfused, max),
               "fp32: FFT or non-fused Winograd accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, F, &failed, max), "a failed result accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, F, &big, max) && imsi_conv_candidate_usable(&f32, F, &fits, max),
               "workspace limit: over refused, equal accepted");
    TEST_CHECK(imsi_conv_candidate_usable(&t32, F, &tc_gemm, max) && imsi_conv_candidate_usable(&t32, F, &def_gemm, max) &&
                   imsi_conv_candidate_usable(&t32, F, &fma_fft, max),
               "tf32: tensor-op, default or FFT refused");
    TEST_CHECK(!imsi_conv_candidate_usable(&t32, F, &conv_gemm, max), "tf32: conversion to f16 accepted");
    TEST_CHECK(imsi_conv_candidate_usable(&f16, F, &conv_gemm, max) && imsi_conv_candidate_usable(&f16, F, &tc_gemm, max),
               "fp16: tensor-op math refused");
    TEST_CHECK(imsi_conv_candidate_usable(&ident, F, &tc_gemm, max) && !imsi_conv_candidate_usable(&ident, F, &fma_gemm, max),
               "no ReLU (IDENTITY): only IMPLICIT_PRECOMP_GEMM may run the fused call");
    TEST_CHECK(imsi_conv_candidate_usable(&ident, IMSI_CONV_MODE_FALLBACK, &fma_gemm, max),
               "no ReLU: the fallback (our epilogue) refuses another algorithm");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, IMSI_CONV_MODE_FALLBACK, &def_gemm, max),
               "fp32 fallback: DEFAULT_MATH accepted");
    printf("conv candidates: checked\n");
}

/* ---- Convolution: the search and the plan cache, on a fake cuDNN ----------------- */

typedef struct fake_cudnn {
    imsi_conv_candidate list[3][8]; /* what gather returns, per mode */
    int count[3];
    int accept[3][8];               /* [mode][algo]: the attempt runs */
    int gathers[3], prepares, releases, gather_fails;
    int log_mode[64], log_algo[64], attempts; /* every attempt, in order */
} fake_cudnn;

static ims_status fake_prepare(void *ctx, const imsi_conv_key *key, void **plan, ims_error *err)
{
    fake_cudnn *f = ctx;
    f->prepares++;
    *plan = f; /* any non-NULL state */
    return IMS_OK;
}

static void fake_release(void *ctx, void *plan)
{
    fake_cudnn *f = plan;
    f->releases++;
}

static int fake_gather(void *ctx, void *plan, int mode, imsi_conv_candidate *out, int max, ims_error *err)
{
    fake_cudnn *f = ctx;
    f->gathers[mode]++;
    if (f->gather_fails)
        return ims_error_set(err, IMS_ERR_NOMEM, "fake: out of device memory"), -1;
    for (int i = 0; i < f->count[mode] && i < max; i++)
        out[i] = f->list[mode][i];
    return f->count[mode];
}

static int fake_attempt(void *ctx, void *plan, int mode, imsi_conv_candidate *c)
{
    fake_cudnn *f = ctx;
    if (f->attempts < 64)
        f->log_mode[f->attempts] = mode, f->log_algo[f->attempts] = c->algo;
    f->attempts++;
    if (!f->accept[mode][c->algo])
        return 0;
    c->memory = 4321; /* this shape's workspace */
    return 1;
}

static void fake_reset(fake_cudnn *f) { memset(f, 0, sizeof *f); }

static void fake_add(fake_cudnn *f, int mode, int algo, int math)
{
    imsi_conv_candidate c = {algo, 1, math, 100};
    f->list[mode][f->count[mode]++] = c;
}

static void test_conv_search(void)
{
    const int F = IMSI_CONV_MODE_FUSED, B = IMSI_CONV_MODE_FALLBACK;
    const int GEMM = IMSI_CONV_ALGO_IMPLICIT_GEMM, PRECOMP = IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM;
    const int DIRECT = IMSI_CONV_ALGO_GEMM;
    fake_cudnn f;
    const imsi_conv_search_ops ops = {&f, fake_prepare, fake_release, fake_gather, fake_attempt};
    imsi_conv_cache cache = {0};
    imsi_conv_plan *pl = NULL;
    ims_error err = {0};
    imsi_conv_key k32 = conv_key(IMS_PRECISION_FP32, 1);

    /* fp32: the DEFAULT_MATH result is skipped, the first FMA one refused, the second runs fused */
    fake_reset(&f);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_DEFAULT);
    fake_add(&f, F, GEMM, IMSI_CONV_MATH_FMA);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA); /* a duplicate: attempted once */
    f.accept[F][PRECOMP] = 1;
    TEST_OK(imsi_conv_cache_get(&cache, &k32, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->mode == F && pl->cand.algo == PRECOMP && pl->cand.math == IMSI_CONV_MATH_FMA &&
                   pl->cand.memory == 4321,
               "fused: mode %d algo %d math %d memory %zu", pl ? pl->mode : -1, pl ? pl->cand.algo : -1,
               pl ? pl->cand.math : -1, pl ? pl->cand.memory : 0);
    TEST_CHECK(f.attempts == 2 && f.log_algo[0] == GEMM && f.log_algo[1] == PRECOMP && f.gathers[B] == 0,
               "fused search: %d attempts, %d fallback searches", f.attempts, f.gathers[B]);
    /* the same call again: the cached plan, no search, no attempt */
    int attempts = f.attempts;
    TEST_OK(imsi_conv_cache_get(&cache, &k32, 1, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(cache.searches == 1 && f.attempts == attempts && f.gathers[F] == 1, "a cached plan searched again");
    imsi_conv_cache_free(&cache, &ops);
    TEST_CHECK(f.prepares == 1 && f.releases == 1, "plans: %d prepared, %d released", f.prepares, f.releases);

    /* cuDNN refuses every fused call: the fallback runs with its first accepted candidate */
    fake_reset(&f);
    fake_add(&f, F, GEMM, IMSI_CONV_MATH_FMA);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    fake_add(&f, B, GEMM, IMSI_CONV_MATH_FMA);
    fake_add(&f, B, DIRECT, IMSI_CONV_MATH_FMA);
    f.accept[B][DIRECT] = 1;
    TEST_OK(imsi_conv_cache_get(&cache, &k32, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->mode == B && pl->cand.algo == DIRECT && pl->tried_fused == 2 && pl->tried_fallback == 2,
               "fallback: mode %d algo %d, tried %d fused and %d fallback", pl ? pl->mode : -1,
               pl ? pl->cand.algo : -1, pl ? pl->tried_fused : -1, pl ? pl->tried_fallback : -1);
    imsi_conv_cache_free(&cache, &ops);

    /* nothing runs: the failure is cached with its reason, and no later call searches again */
    fake_reset(&f);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    fake_add(&f, B, GEMM, IMSI_CONV_MATH_FMA);
    for (int rep = 0; rep < 3; rep++) {
        memset(&err, 0, sizeof err);
        ims_status st = imsi_conv_cache_get(&cache, &k32, rep == 2, 0, 1000, &ops, &pl, &err);
        TEST_CHECK(st == IMS_ERR_UNSUPPORTED && pl == NULL && strstr(err.msg, "cuDNN runs no 3x3 convolution") &&
                       strstr(err.msg, "tried 1 algorithms fused and 1 into a packed buffer"),
                   "call %d with no way: %s (%s)", rep, ims_status_name(st), err.msg);
    }
    TEST_CHECK(cache.searches == 1 && f.attempts == 2 && f.gathers[F] == 1 && f.gathers[B] == 1,
               "a failed plan searched %d times (%d attempts)", cache.searches, f.attempts);
    TEST_CHECK(f.releases == 1, "a failed plan's descriptors kept (%d released)", f.releases);
    imsi_conv_cache_free(&cache, &ops);
    TEST_CHECK(f.releases == 1, "a failed plan's descriptors released twice");

    /* forced fallback: no fused search at all */
    fake_reset(&f);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    fake_add(&f, B, PRECOMP, IMSI_CONV_MATH_FMA);
    f.accept[F][PRECOMP] = f.accept[B][PRECOMP] = 1;
    TEST_OK(imsi_conv_cache_get(&cache, &k32, 0, 1, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->mode == B && f.gathers[F] == 0, "forced fallback: mode %d, %d fused searches",
               pl ? pl->mode : -1, f.gathers[F]);
    imsi_conv_cache_free(&cache, &ops);

    /* during capture a missing plan is an error, and nothing is searched or cached */
    fake_reset(&f);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    f.accept[F][PRECOMP] = 1;
    memset(&err, 0, sizeof err);
    ims_status st = imsi_conv_cache_get(&cache, &k32, 1, 0, 1000, &ops, &pl, &err);
    TEST_CHECK(st == IMS_ERR_UNSUPPORTED && strstr(err.msg, "capture") && cache.count == 0 && f.prepares == 0,
               "capturing without a plan: %s (%s), %zu cached", ims_status_name(st), err.msg, cache.count);

    /* a failed search (out of memory) is reported and not cached: the next call searches again */
    f.gather_fails = 1;
    st = imsi_conv_cache_get(&cache, &k32, 0, 0, 1000, &ops, &pl, &err);
    TEST_CHECK(st == IMS_ERR_NOMEM && cache.count == 0 && f.releases == f.prepares,
               "failed search: %s, %zu cached, %d prepared %d released", ims_status_name(st), cache.count, f.prepares,
               f.releases);
    f.gather_fails = 0;
    TEST_OK(imsi_conv_cache_get(&cache, &k32, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(cache.searches == 2 && pl && pl->mode == F, "search after a failed one: %d searches", cache.searches);
    /* another alignment of the same shape is another plan */
    imsi_conv_key shifted;
    imsi_conv_key_make(&shifted, 2, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, IMS_PRECISION_FP32, 1, base, base + 4096,
                       base + 8192, base + 16384 + 4);
    TEST_OK(imsi_conv_cache_get(&cache, &shifted, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(cache.searches == 3 && cache.count == 2, "an unaligned slice reused the aligned plan");
    imsi_conv_cache_free(&cache, &ops);

    /* no ReLU (IDENTITY): the fused call with IMPLICIT_PRECOMP_GEMM only, the fallback with any */
    imsi_conv_key ident = conv_key(IMS_PRECISION_FP16, 0);
    fake_reset(&f);
    fake_add(&f, F, GEMM, IMSI_CONV_MATH_TENSOR_OP);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_TENSOR_OP);
    fake_add(&f, B, GEMM, IMSI_CONV_MATH_TENSOR_OP);
    f.accept[F][GEMM] = f.accept[B][GEMM] = 1;
    TEST_OK(imsi_conv_cache_get(&cache, &ident, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->mode == B && pl->cand.algo == GEMM && f.log_algo[0] == PRECOMP,
               "identity: mode %d algo %d (the fused call with IMPLICIT_GEMM must not be tried)", pl ? pl->mode : -1,
               pl ? pl->cand.algo : -1);
    imsi_conv_cache_free(&cache, &ops);
    printf("conv search and plan cache: checked\n");
}

static imsi_conv_key batch_key(int n, int precision)
{
    imsi_conv_key k;
    imsi_conv_key_make(&k, n, 17, 17, 40, 24, 3, 3, 2, 2, 0, 0, 64, precision, 1, base, base + 4096, base + 8192,
                       base + 16384);
    return k;
}

/* A new batch size tries the nearest planned batch's choice before any search. */
static void test_conv_nearest_batch(void)
{
    const int F = IMSI_CONV_MODE_FUSED, B = IMSI_CONV_MODE_FALLBACK;
    const int GEMM = IMSI_CONV_ALGO_IMPLICIT_GEMM, PRECOMP = IMSI_CONV_ALGO_IMPLICIT_PRECOMP_GEMM;
    const int DIRECT = IMSI_CONV_ALGO_GEMM;
    fake_cudnn f;
    const imsi_conv_search_ops ops = {&f, fake_prepare, fake_release, fake_gather, fake_attempt};
    imsi_conv_cache cache = {0};
    imsi_conv_plan *pl = NULL;
    ims_error err = {0};
    fake_reset(&f);
    fake_add(&f, F, GEMM, IMSI_CONV_MATH_FMA);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    fake_add(&f, F, DIRECT, IMSI_CONV_MATH_FMA);
    /* batch 13 runs fused with IMPLICIT_GEMM, batch 64 with IMPLICIT_PRECOMP_GEMM */
    f.accept[F][GEMM] = 1;
    imsi_conv_key k13 = batch_key(13, IMS_PRECISION_FP32), k64 = batch_key(64, IMS_PRECISION_FP32);
    TEST_OK(imsi_conv_cache_get(&cache, &k13, 0, 0, 1000, &ops, &pl, &err), err);
    f.accept[F][GEMM] = 0, f.accept[F][PRECOMP] = 1;
    TEST_OK(imsi_conv_cache_get(&cache, &k64, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(cache.searches == 2 && pl && pl->cand.algo == PRECOMP, "batch 64: %d searches, algo %d", cache.searches,
               pl ? pl->cand.algo : -1);
    /* 60 is nearest 64: its choice, one attempt, no search */
    f.accept[F][GEMM] = 1;
    int attempts = f.attempts, gathers = f.gathers[F];
    imsi_conv_key k60 = batch_key(60, IMS_PRECISION_FP32);
    TEST_OK(imsi_conv_cache_get(&cache, &k60, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->cand.algo == PRECOMP && pl->from_batch == 64 && f.attempts == attempts + 1 &&
                   f.gathers[F] == gathers && cache.searches == 2 && cache.reuses == 1,
               "batch 60: algo %d from batch %d, %d attempts, %d searches", pl ? pl->cand.algo : -1,
               pl ? pl->from_batch : -1, f.attempts - attempts, cache.searches);
    /* 14 is nearest 13 */
    imsi_conv_key k14 = batch_key(14, IMS_PRECISION_FP32);
    TEST_OK(imsi_conv_cache_get(&cache, &k14, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->cand.algo == GEMM && pl->from_batch == 13 && cache.searches == 2,
               "batch 14: algo %d from batch %d", pl ? pl->cand.algo : -1, pl ? pl->from_batch : -1);
    /* the nearest choice refused (30 is nearest 14 and 13, both IMPLICIT_GEMM): a full search */
    f.accept[F][GEMM] = f.accept[F][PRECOMP] = 0, f.accept[F][DIRECT] = 1;
    imsi_conv_key k30 = batch_key(30, IMS_PRECISION_FP32);
    TEST_OK(imsi_conv_cache_get(&cache, &k30, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->cand.algo == DIRECT && pl->from_batch == 0 && cache.searches == 3,
               "batch 30: algo %d, %d searches", pl ? pl->cand.algo : -1, cache.searches);
    /* another precision, or a cached failure, is never a hint */
    imsi_conv_key h16 = batch_key(16, IMS_PRECISION_FP16);
    TEST_CHECK(imsi_conv_cache_nearest(&cache, &h16) == NULL, "an fp32 plan offered to an fp16 call");
    const imsi_conv_plan *near = imsi_conv_cache_nearest(&cache, &k60);
    TEST_CHECK(near && near->key.n == 60, "nearest to an existing batch is itself");
    imsi_conv_key k2 = batch_key(2, IMS_PRECISION_FP32);
    near = imsi_conv_cache_nearest(&cache, &k2);
    TEST_CHECK(near && near->key.n == 13, "nearest to 2: batch %d", near ? near->key.n : -1);
    /* equally near 13 and 14 ... 22 is between 14 and 30: 8 each way: the larger */
    imsi_conv_key k22 = batch_key(22, IMS_PRECISION_FP32);
    near = imsi_conv_cache_nearest(&cache, &k22);
    TEST_CHECK(near && near->key.n == 30, "a tie between 14 and 30 for 22: batch %d", near ? near->key.n : -1);
    imsi_conv_cache_free(&cache, &ops);
    /* forced fallback: a fused choice is no hint */
    fake_reset(&f);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    fake_add(&f, B, PRECOMP, IMSI_CONV_MATH_FMA);
    f.accept[F][PRECOMP] = f.accept[B][PRECOMP] = 1;
    TEST_OK(imsi_conv_cache_get(&cache, &k13, 0, 0, 1000, &ops, &pl, &err), err);
    TEST_OK(imsi_conv_cache_get(&cache, &k14, 0, 1, 1000, &ops, &pl, &err), err);
    TEST_CHECK(pl && pl->mode == B && pl->from_batch == 0, "forced fallback took a fused hint");
    imsi_conv_cache_free(&cache, &ops);
    /* a failed plan is no hint */
    fake_reset(&f);
    fake_add(&f, F, PRECOMP, IMSI_CONV_MATH_FMA);
    TEST_CHECK(imsi_conv_cache_get(&cache, &k13, 0, 0, 1000, &ops, &pl, &err) == IMS_ERR_UNSUPPORTED,
               "no way for batch 13");
    TEST_CHECK(imsi_conv_cache_nearest(&cache, &k14) == NULL, "a failed plan offered as a hint");
    imsi_conv_cache_free(&cache, &ops);
    printf("conv nearest batch: checked\n");
}

/* ---- Convolution: batches past cuDNN's 2^31-element tensors ----------------------- */

static void test_conv_batch_split(void)
{
    const int64_t limit = INT32_MAX;
    /* Inception's largest activation: the stem's third convolution, 147 x 147 x 64 per image */
    int per = imsi_conv_max_batch(147, 147, 32, 147, 147, 64);
    TEST_CHECK(per == 1552 && (int64_t)per * 147 * 147 * 64 <= limit && (int64_t)(per + 1) * 147 * 147 * 64 > limit,
               "stem conv 2b: %d images per call (expected 1552)", per);
    /* the input decides where it is the larger tensor */
    per = imsi_conv_max_batch(299, 299, 3, 149, 149, 32);
    TEST_CHECK(per == (int)(limit / (149 * 149 * 32)), "stem conv 1a: %d images per call", per);
    per = imsi_conv_max_batch(64, 64, 80, 32, 32, 8);
    TEST_CHECK(per == (int)(limit / (64 * 64 * 80)), "a wide input: %d images per call", per);
    uint64_t rng = 0x5117ull;
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t h = 1 + (int64_t)(test_rand_u64(&rng) % 400), w = 1 + (int64_t)(test_rand_u64(&rng) % 400);
        int64_t c = 1 + (int64_t)(test_rand_u64(&rng) % 2048), yc = 1 + (int64_t)(test_rand_u64(&rng) % 2048);
        int64_t oh = 1 + (int64_t)(test_rand_u64(&rng) % (uint64_t)h), ow = 1 + (int64_t)(test_rand_u64(&rng) % (uint64_t)w);
        int64_t big = h * w * c > oh * ow * yc ? h * w * c : oh * ow * yc;
        per = imsi_conv_max_batch(h, w, c, oh, ow, yc);
        int ok = big > limit ? per == 0 : per >= 1 && per * big <= limit && (per + 1) * big > limit;
        if (!ok && bad++ < 5)
            TEST_CHECK(ok, "(%lld, %lld, %lld) -> (%lld, %lld, %lld): %d images per call", (long long)h, (long long)w,
                       (long long)c, (long long)oh, (long long)ow, (long long)yc, per);
    }
    TEST_CHECK(bad == 0, "%d random shapes split wrongly", bad);
    TEST_CHECK(imsi_conv_max_batch(65536, 65536, 1, 1, 1, 1) == 0 && imsi_conv_max_batch(1, 1, 1, 46341, 46341, 1) == 0,
               "one image past 2^31 elements accepted");
    TEST_CHECK(imsi_conv_max_batch(limit, limit, limit, 1, 1, 1) == 0, "a product overflowing 64 bits accepted");
    TEST_CHECK(imsi_conv_max_batch(1, 1, 1, 1, 1, 1) == limit, "a 1-element image: %d per call",
               imsi_conv_max_batch(1, 1, 1, 1, 1, 1));
    printf("conv batch split: checked\n");
}

/* ---- Library statuses -> ims_status -------------------------------------------------- */

static void test_status_codes(void)
{
    /* cuDNN 9: device out of memory (4004) is memory, as host (4003) is */
    TEST_CHECK(imsi_cudnn_error_status(4004) == IMS_ERR_NOMEM && imsi_cudnn_error_status(4003) == IMS_ERR_NOMEM,
               "cuDNN allocation failures: %s, %s", ims_status_name(imsi_cudnn_error_status(4004)),
               ims_status_name(imsi_cudnn_error_status(4003)));
    TEST_CHECK(imsi_cudnn_error_status(0) == IMS_OK && imsi_cudnn_error_status(3000) == IMS_ERR_CUDA &&
                   imsi_cudnn_error_status(4000) == IMS_ERR_CUDA && imsi_cudnn_error_status(2000) == IMS_ERR_CUDA,
               "cuDNN: success, not supported, internal error, bad param");
    TEST_CHECK(imsi_cuda_error_status(2) == IMS_ERR_NOMEM && imsi_cuda_error_status(100) == IMS_ERR_NO_DEVICE &&
                   imsi_cuda_error_status(35) == IMS_ERR_NO_DEVICE && imsi_cuda_error_status(700) == IMS_ERR_CUDA &&
                   imsi_cuda_error_status(0) == IMS_OK,
               "CUDA runtime errors");
    TEST_CHECK(imsi_cublas_error_status(3) == IMS_ERR_NOMEM && imsi_cublas_error_status(13) == IMS_ERR_CUDA &&
                   imsi_cublas_error_status(0) == IMS_OK,
               "cuBLAS statuses");
}

int main(void)
{
    test_status_codes();
    test_knn_layout();
    test_knn_partitions();
    test_conv_keys();
    test_conv_candidates();
    test_conv_search();
    test_conv_nearest_batch();
    test_conv_batch_split();
    return test_finish();
}
