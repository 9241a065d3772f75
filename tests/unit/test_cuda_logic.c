/* test_cuda_logic.c: what the CUDA backend decides without a device, checked
 * on the CPU (ctest label unit, every build; parts that need the CUDA
 * headers run where the toolkit is).
 *
 * The GPU code keeps such decisions in plain C functions so that CI, which
 * has no GPU, tests them: the k-NN op's scratch layout (every part 16-byte
 * aligned, no overlaps, inside the index layer's estimate); the cuDNN
 * convolution's plan keys (shapes, precision, activation and alignment) and
 * its rule for usable algorithms (fp32 stays a reference: FMA math only).
 */
#include "test.h"

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
    size_t tile_bytes = (size_t)b * (size_t)l.ld * 4, cand_bytes = (size_t)b * k * 4, tmp_bytes = (size_t)b * k * 8;
    int copy_rows = path == IMS_KNN_PATH_GEMM && f16;
    size_t rows_bytes = copy_rows ? (size_t)l.tile_rows * d * 4 : path == IMS_KNN_PATH_GEMM_F16 ? (size_t)b * d * 2 : 0;
    int aligned = l.tile % 16 == 0 && l.cand % 16 == 0 && l.tmp % 16 == 0 && l.seg % 16 == 0 && l.rows % 16 == 0;
    int ordered = l.tile + tile_bytes <= l.cand && l.cand + cand_bytes <= l.tmp && l.tmp + tmp_bytes <= l.seg &&
                  l.seg + l.seg_bytes <= l.rows && l.rows + l.rows_bytes <= l.total;
    int64_t t_expect = imsi_knn_tile_rows(b, k, n, copy_rows ? d : 0);
    size_t seg_expect = imsi_knn_two_stage(k, l.tile_rows)
                            ? (size_t)b * (size_t)((l.tile_rows + IMS_KNN_SEGMENT - 1) / IMS_KNN_SEGMENT) * k * 8
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
    TEST_CHECK(imsi_conv_candidate_usable(&f32, &fma_gemm, max) && imsi_conv_candidate_usable(&f32, &fma_wino, max),
               "fp32: FMA implicit GEMM / fused Winograd refused");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, &def_gemm, max), "fp32: DEFAULT_MATH (TF32 on Hopper) accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, &tc_gemm, max), "fp32: tensor-op math accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, &fma_fft, max) && !imsi_conv_candidate_usable(&f32, &fma_fft_tiling, max) &&
                   !imsi_conv_candidate_usable(&f32, &fma_nonfused, max),
               "fp32: FFT or non-fused Winograd accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, &failed, max), "a failed result accepted");
    TEST_CHECK(!imsi_conv_candidate_usable(&f32, &big, max) && imsi_conv_candidate_usable(&f32, &fits, max),
               "workspace limit: over refused, equal accepted");
    TEST_CHECK(imsi_conv_candidate_usable(&t32, &tc_gemm, max) && imsi_conv_candidate_usable(&t32, &def_gemm, max) &&
                   imsi_conv_candidate_usable(&t32, &fma_fft, max),
               "tf32: tensor-op, default or FFT refused");
    TEST_CHECK(!imsi_conv_candidate_usable(&t32, &conv_gemm, max), "tf32: conversion to f16 accepted");
    TEST_CHECK(imsi_conv_candidate_usable(&f16, &conv_gemm, max) && imsi_conv_candidate_usable(&f16, &tc_gemm, max),
               "fp16: tensor-op math refused");
    TEST_CHECK(imsi_conv_candidate_usable(&ident, &tc_gemm, max) && !imsi_conv_candidate_usable(&ident, &fma_gemm, max),
               "no ReLU (IDENTITY): only IMPLICIT_PRECOMP_GEMM may run the fused call");
    printf("conv candidates: checked\n");
}

int main(void)
{
    test_knn_layout();
    test_conv_keys();
    test_conv_candidates();
    return test_finish();
}
