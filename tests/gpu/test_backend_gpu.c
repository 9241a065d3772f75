/* test_backend_gpu.c: every CUDA backend op against the CPU backend (ctest label gpu).
 *
 * Each op runs on both backends on the same seeded random inputs, several sizes
 * (some not multiples of a warp or a block), plus edge values: f16 rounding
 * ties, subnormals, overflow, Inf, NaN, -0; zero, NaN and Inf rows. Every output
 * is poisoned with 0xff bytes (NaN in f32 and f16) before the op, so a kernel
 * that skips an element fails. Tolerances are explained where they are checked.
 * One line per sub-test goes to stdout so a GPU session's log shows what ran.
 *
 * Exits 77 (skipped) in a CPU-only build and where no CUDA device is usable.
 */
#include "test.h"

#include "backend/backend.h"

#include <math.h>
#include <string.h>

#ifdef IMS_WITH_CUDA

#define SEED 0x1a2b3c4d5e6f7788ull

static ims_backend *cpu_be, *gpu_be;

/* ---- Helpers ---------------------------------------------------------------- */

/* Halves as integers ordered like their values (+0 and -0 both 0): two finite
 * halves are k ulps apart when these differ by k. */
static long half_ordinal(uint16_t h) { return (h & 0x8000u) ? -(long)(h & 0x7fffu) : (long)(h & 0x7fffu); }

/* |a - b| / max(|a|, |b|); 0 when equal (including equal infinities), 1e30 when
 * one is NaN (or both are: callers that accept NaN check for it first). */
static double rel_diff(double a, double b)
{
    if (isnan(a) || isnan(b))
        return 1e30;
    if (a == b)
        return 0.0;
    if (isinf(a) || isinf(b))
        return 1e30;
    return fabs(a - b) / fmax(fabs(a), fabs(b));
}

/* One tensor on each backend, same dtype and shape. */
typedef struct tensor_pair {
    imsi_tensor cpu, gpu;
} tensor_pair;

static void pair_free(tensor_pair *p)
{
    imsi_tensor_free(&p->cpu);
    imsi_tensor_free(&p->gpu);
}

static int pair_alloc(tensor_pair *p, ims_dtype dtype, int ndim, const int64_t *shape)
{
    ims_error err = {0};
    memset(p, 0, sizeof *p);
    if (!test_check_ok(imsi_tensor_alloc(cpu_be, dtype, ndim, shape, &p->cpu, &err), &err, "alloc on cpu") ||
        !test_check_ok(imsi_tensor_alloc(gpu_be, dtype, ndim, shape, &p->gpu, &err), &err, "alloc on cuda")) {
        pair_free(p);
        return 0;
    }
    return 1;
}

/* An input: allocated on both backends and filled from host memory. */
static int pair_input(tensor_pair *p, ims_dtype dtype, int ndim, const int64_t *shape, const void *host)
{
    if (!pair_alloc(p, dtype, ndim, shape))
        return 0;
    ims_error err = {0};
    size_t nbytes = imsi_tensor_nbytes(&p->cpu);
    if (!test_check_ok(imsi_backend_upload(cpu_be, &p->cpu, host, nbytes, &err), &err, "upload to cpu") ||
        !test_check_ok(imsi_backend_upload(gpu_be, &p->gpu, host, nbytes, &err), &err, "upload to cuda")) {
        pair_free(p);
        return 0;
    }
    return 1;
}

/* An output: allocated on both backends and poisoned with 0xff bytes. */
static int pair_output(tensor_pair *p, ims_dtype dtype, int ndim, const int64_t *shape)
{
    if (!pair_alloc(p, dtype, ndim, shape))
        return 0;
    ims_error err = {0};
    if (!test_check_ok(imsi_backend_fill_bytes(cpu_be, &p->cpu, 0xff, &err), &err, "poison on cpu") ||
        !test_check_ok(imsi_backend_fill_bytes(gpu_be, &p->gpu, 0xff, &err), &err, "poison on cuda")) {
        pair_free(p);
        return 0;
    }
    return 1;
}

/* Both results into fresh host buffers (the CUDA download waits for the op). */
static int pair_results(const tensor_pair *p, void **cpu_out, void **gpu_out)
{
    ims_error err = {0};
    size_t nbytes = imsi_tensor_nbytes(&p->cpu);
    *cpu_out = test_xmalloc(nbytes);
    *gpu_out = test_xmalloc(nbytes);
    if (!test_check_ok(imsi_backend_download(cpu_be, *cpu_out, nbytes, &p->cpu, &err), &err, "download from cpu") ||
        !test_check_ok(imsi_backend_download(gpu_be, *gpu_out, nbytes, &p->gpu, &err), &err, "download from cuda")) {
        free(*cpu_out);
        free(*gpu_out);
        *cpu_out = *gpu_out = NULL;
        return 0;
    }
    return 1;
}

/* ---- convert ------------------------------------------------------------------ */

/* Edge values of f32 -> f16: signed zeros, f32 and f16 subnormals, exact ties
 * (round to even both ways), the largest half and the overflow threshold
 * 65520 (a tie that rounds to Inf), Inf, NaN. */
static const float convert_specials[] = {
    0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, 1.17549435e-38f,
    5.9604644775390625e-8f,          /* 2^-24: the smallest f16 subnormal */
    2.98023223876953125e-8f,         /* 2^-25: a tie, rounds to even 0 */
    2.98023259404089e-8f,            /* just above 2^-25: rounds up to 2^-24 */
    8.94069671630859375e-8f,         /* 3 * 2^-25: a tie, rounds to even 2 * 2^-24 */
    6.103515625e-5f,                 /* 2^-14: the smallest f16 normal */
    6.0975551605224609375e-5f,       /* the largest f16 subnormal */
    1.00048828125f,                  /* 1 + 2^-11: a tie, rounds to even 1 */
    1.00146484375f,                  /* 1 + 3 * 2^-11: a tie, rounds to even 1 + 2^-9 */
    -1.00048828125f, 2049.0f, 2051.0f, -2051.0f,
    65504.0f, -65504.0f, 65519.99609375f, 65520.0f, -65520.0f, 65536.0f, 3.4028235e38f, -3.4028235e38f,
    INFINITY, -INFINITY, NAN, -NAN,
};

#define N_SPECIALS (sizeof convert_specials / sizeof convert_specials[0])

/* The midpoint between a random finite half and its successor: an exact f32,
 * where only the tie-to-even rule decides. */
static float random_tie(uint64_t *rng)
{
    uint16_t mag = (uint16_t)(test_rand_u64(rng) % 0x7bffu); /* successor stays finite */
    uint16_t sign = (test_rand_u64(rng) & 1u) ? 0x8000u : 0;
    double lo = ims_f16_to_f32((uint16_t)(sign | mag)), hi = ims_f16_to_f32((uint16_t)(sign | (mag + 1)));
    return (float)((lo + hi) / 2);
}

/* f32 inputs: the specials, then a mix of random bit patterns (every class,
 * NaNs included), values in the f16 range and beyond, and exact ties. */
static void fill_convert_input(float *x, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        if (i < N_SPECIALS) {
            x[i] = convert_specials[i];
            continue;
        }
        switch (test_rand_u64(rng) % 4) {
        case 0: x[i] = test_f32_from_bits((uint32_t)test_rand_u64(rng)); break;
        case 1: x[i] = test_rand_uniform(rng, -70000.0f, 70000.0f); break;
        case 2: x[i] = test_rand_uniform(rng, -1.0f, 1.0f) * 1e-4f; break;
        default: x[i] = random_tie(rng); break;
        }
    }
}

static void test_convert_f32_to_f16(size_t n, uint64_t *rng)
{
    float *x = test_xmalloc(n * sizeof *x); // (n)
    fill_convert_input(x, n, rng);
    int64_t shape[1] = {(int64_t)n};
    tensor_pair src, dst;
    size_t mismatches = 0;
    if (pair_input(&src, IMS_DTYPE_F32, 1, shape, x)) {
        if (pair_output(&dst, IMS_DTYPE_F16, 1, shape)) {
            ims_error err = {0};
            test_check_ok(imsi_op_convert(cpu_be, &src.cpu, &dst.cpu, &err), &err, "convert f32->f16 on cpu");
            test_check_ok(imsi_op_convert(gpu_be, &src.gpu, &dst.gpu, &err), &err, "convert f32->f16 on cuda");
            void *want_p, *got_p;
            if (pair_results(&dst, &want_p, &got_p)) {
                const uint16_t *want = want_p, *got = got_p; // (n), (n)
                for (size_t i = 0; i < n; i++) {
                    /* Bit for bit; NaN payloads may differ (only NaN-ness counts). */
                    int ok = isnan(x[i]) ? test_half_is_nan(want[i]) && test_half_is_nan(got[i]) : want[i] == got[i];
                    if (!ok && mismatches++ < 10)
                        TEST_CHECK(ok, "f32->f16 n=%zu [%zu]: %.9g (0x%08x) -> cpu 0x%04x, cuda 0x%04x", n, i,
                                   (double)x[i], test_f32_bits(x[i]), want[i], got[i]);
                }
                free(want_p);
                free(got_p);
            }
            pair_free(&dst);
        }
        pair_free(&src);
    }
    TEST_CHECK(mismatches == 0, "f32->f16 n=%zu: %zu mismatches", n, mismatches);
    printf("convert f32->f16 n=%zu: %zu mismatches\n", n, mismatches);
    free(x);
}

/* f16 -> f32 on n halves: every pattern in order (n = 65536 covers all), then
 * random patterns. */
static void test_convert_f16_to_f32(size_t n, uint64_t *rng)
{
    uint16_t *x = test_xmalloc(n * sizeof *x); // (n)
    for (size_t i = 0; i < n; i++)
        x[i] = i < 65536 ? (uint16_t)i : (uint16_t)test_rand_u64(rng);
    int64_t shape[1] = {(int64_t)n};
    tensor_pair src, dst;
    size_t mismatches = 0;
    if (pair_input(&src, IMS_DTYPE_F16, 1, shape, x)) {
        if (pair_output(&dst, IMS_DTYPE_F32, 1, shape)) {
            ims_error err = {0};
            test_check_ok(imsi_op_convert(cpu_be, &src.cpu, &dst.cpu, &err), &err, "convert f16->f32 on cpu");
            test_check_ok(imsi_op_convert(gpu_be, &src.gpu, &dst.gpu, &err), &err, "convert f16->f32 on cuda");
            void *want_p, *got_p;
            if (pair_results(&dst, &want_p, &got_p)) {
                const float *want = want_p, *got = got_p; // (n), (n)
                for (size_t i = 0; i < n; i++) {
                    int ok = test_half_is_nan(x[i]) ? isnan(want[i]) && isnan(got[i])
                                               : test_f32_bits(want[i]) == test_f32_bits(got[i]);
                    if (!ok && mismatches++ < 10)
                        TEST_CHECK(ok, "f16->f32 n=%zu [%zu]: 0x%04x -> cpu 0x%08x, cuda 0x%08x", n, i, x[i],
                                   test_f32_bits(want[i]), test_f32_bits(got[i]));
                }
                free(want_p);
                free(got_p);
            }
            pair_free(&dst);
        }
        pair_free(&src);
    }
    TEST_CHECK(mismatches == 0, "f16->f32 n=%zu: %zu mismatches", n, mismatches);
    printf("convert f16->f32 n=%zu: %zu mismatches\n", n, mismatches);
    free(x);
}

/* Same-dtype convert is a device-to-device copy. */
static void test_convert_copy(size_t n, uint64_t *rng)
{
    float *x = test_xmalloc(n * sizeof *x); // (n)
    for (size_t i = 0; i < n; i++)
        x[i] = test_rand_uniform(rng, -100.0f, 100.0f);
    int64_t shape[1] = {(int64_t)n};
    tensor_pair src, dst;
    int same = 0;
    if (pair_input(&src, IMS_DTYPE_F32, 1, shape, x)) {
        if (pair_output(&dst, IMS_DTYPE_F32, 1, shape)) {
            ims_error err = {0};
            test_check_ok(imsi_op_convert(cpu_be, &src.cpu, &dst.cpu, &err), &err, "convert f32->f32 on cpu");
            test_check_ok(imsi_op_convert(gpu_be, &src.gpu, &dst.gpu, &err), &err, "convert f32->f32 on cuda");
            void *want, *got; // (n), (n)
            if (pair_results(&dst, &want, &got)) {
                same = memcmp(x, want, n * sizeof *x) == 0 && memcmp(x, got, n * sizeof *x) == 0;
                free(want);
                free(got);
            }
            pair_free(&dst);
        }
        pair_free(&src);
    }
    TEST_CHECK(same, "convert f32->f32 n=%zu is not an exact copy", n);
    printf("convert f32->f32 copy n=%zu: %s\n", n, same ? "exact" : "DIFFERS");
    free(x);
}

/* ---- l2_normalize_rows ------------------------------------------------------------ */

/* Rows of random values in [-1, 1], each row scaled by 10^k (k in -3..3) so
 * norms vary. With `specials` (n >= 7) rows 0..6 are: all zeros, one NaN,
 * one +Inf, tiny values (x^2 underflows f32), huge values (x^2 overflows f32),
 * a single nonzero element, and -Inf. */
static void fill_l2_input(float *x, int n, int d, int specials, uint64_t *rng)
{
    for (int r = 0; r < n; r++) {
        float scale = powf(10.0f, (float)(int)(test_rand_u64(rng) % 7) - 3.0f);
        for (int i = 0; i < d; i++)
            x[(size_t)r * d + i] = test_rand_uniform(rng, -1.0f, 1.0f) * scale;
    }
    if (!specials)
        return;
    for (int i = 0; i < d; i++) {
        x[0 * (size_t)d + i] = 0.0f;
        x[3 * (size_t)d + i] = test_rand_uniform(rng, 0.5f, 1.0f) * 1e-25f;
        x[4 * (size_t)d + i] = test_rand_uniform(rng, 0.5f, 1.0f) * 1e25f;
        x[5 * (size_t)d + i] = 0.0f;
    }
    x[1 * (size_t)d + d / 2] = NAN;
    x[2 * (size_t)d + d - 1] = INFINITY;
    x[5 * (size_t)d + d / 3] = -3.5f;
    x[6 * (size_t)d] = -INFINITY;
}

/* Tolerances. Both backends sum squares in double and scale in double, so they
 * differ by a reordered double sum (~1e-16 relative): norms and f32 outputs
 * may differ by one final f32 rounding (1.2e-7 relative), f16 outputs by one
 * f16 ulp. 1e-6 / 2e-6 leave room but catch any float-accumulated sum of
 * squares that drifts, and any wrong element. y is compared per element
 * (relative to the element, not the row), which these outputs allow. */
#define L2_NORM_TOL 1e-6
#define L2_Y_TOL 2e-6

static void test_l2_normalize(int n, int d, ims_dtype y_dtype, int specials, uint64_t *rng)
{
    size_t count = (size_t)n * d;
    float *x = test_xmalloc(count * sizeof *x); // (n, d)
    fill_l2_input(x, n, d, specials, rng);
    int64_t shape[2] = {n, d};
    int64_t norm_shape[1] = {n};
    tensor_pair xt, yt, nt;
    size_t bad_norms = 0, bad_y = 0, bad_zero_rows = 0;
    double max_norm_rel = 0, max_y_rel = 0;
    long max_ulps = 0;
    if (!pair_input(&xt, IMS_DTYPE_F32, 2, shape, x)) {
        free(x);
        return;
    }
    if (pair_output(&yt, y_dtype, 2, shape)) {
        if (pair_output(&nt, IMS_DTYPE_F32, 1, norm_shape)) {
            ims_error err = {0};
            test_check_ok(imsi_op_l2_normalize_rows(cpu_be, &xt.cpu, &yt.cpu, &nt.cpu, &err), &err, "l2 on cpu");
            test_check_ok(imsi_op_l2_normalize_rows(gpu_be, &xt.gpu, &yt.gpu, &nt.gpu, &err), &err, "l2 on cuda");
            void *want_y, *got_y;    // (n, d), (n, d)
            void *want_np, *got_np;
            if (pair_results(&nt, &want_np, &got_np)) {
                const float *want_n = want_np, *got_n = got_np; // (n), (n)
                if (pair_results(&yt, &want_y, &got_y)) {
                    for (int r = 0; r < n; r++) {
                        double rel = rel_diff(want_n[r], got_n[r]);
                        int nan_both = isnan(want_n[r]) && isnan(got_n[r]);
                        if (!nan_both && rel > max_norm_rel)
                            max_norm_rel = rel;
                        if (!nan_both && rel > L2_NORM_TOL && bad_norms++ < 5)
                            TEST_CHECK(0, "l2 (%d, %d) norm[%d]: cpu %.9g, cuda %.9g", n, d, r, (double)want_n[r],
                                       (double)got_n[r]);
                        /* A row with no direction: y must be exactly 0 on both. */
                        int zero_row = !(want_n[r] > 0.0f) || isinf(want_n[r]);
                        for (int i = 0; i < d; i++) {
                            size_t at = (size_t)r * d + i;
                            int ok;
                            if (y_dtype == IMS_DTYPE_F16) {
                                uint16_t a = ((uint16_t *)want_y)[at], b = ((uint16_t *)got_y)[at];
                                long ulps = labs(half_ordinal(a) - half_ordinal(b));
                                if (zero_row)
                                    ok = (a & 0x7fffu) == 0 && (b & 0x7fffu) == 0;
                                else
                                    ok = !test_half_is_nan(a) && !test_half_is_nan(b) && ulps <= 1;
                                if (!test_half_is_nan(a) && !test_half_is_nan(b) && ulps > max_ulps)
                                    max_ulps = ulps;
                                if (!ok && (zero_row ? bad_zero_rows++ : bad_y++) < 5)
                                    TEST_CHECK(ok, "l2 (%d, %d) f16 y[%d][%d]: cpu 0x%04x, cuda 0x%04x", n, d, r, i,
                                               a, b);
                            } else {
                                float a = ((float *)want_y)[at], b = ((float *)got_y)[at];
                                double rel_y = rel_diff(a, b);
                                if (zero_row)
                                    ok = a == 0.0f && b == 0.0f;
                                else
                                    ok = rel_y <= L2_Y_TOL;
                                if (!zero_row && rel_y > max_y_rel)
                                    max_y_rel = rel_y;
                                if (!ok && (zero_row ? bad_zero_rows++ : bad_y++) < 5)
                                    TEST_CHECK(ok, "l2 (%d, %d) f32 y[%d][%d]: cpu %.9g, cuda %.9g", n, d, r, i,
                                               (double)a, (double)b);
                            }
                        }
                    }
                    if (specials) {
                        TEST_CHECK(want_n[0] == 0.0f && got_n[0] == 0.0f, "zero row norm: cpu %g, cuda %g",
                                   (double)want_n[0], (double)got_n[0]);
                        TEST_CHECK(isnan(want_n[1]) && isnan(got_n[1]), "NaN row norm: cpu %g, cuda %g",
                                   (double)want_n[1], (double)got_n[1]);
                        TEST_CHECK(isinf(want_n[2]) && isinf(got_n[2]), "Inf row norm: cpu %g, cuda %g",
                                   (double)want_n[2], (double)got_n[2]);
                        TEST_CHECK(want_n[3] > 0.0f && got_n[3] > 0.0f, "tiny row norm: cpu %g, cuda %g",
                                   (double)want_n[3], (double)got_n[3]);
                        TEST_CHECK(isfinite(want_n[4]) && isfinite(got_n[4]), "huge row norm: cpu %g, cuda %g",
                                   (double)want_n[4], (double)got_n[4]);
                    }
                    free(want_y);
                    free(got_y);
                }
                free(want_np);
                free(got_np);
            }
            pair_free(&nt);
        }
        pair_free(&yt);
    }
    pair_free(&xt);
    TEST_CHECK(bad_norms + bad_y + bad_zero_rows == 0, "l2 (%d, %d) %s: %zu norms, %zu y, %zu zero-row y wrong", n,
               d, ims_dtype_name(y_dtype), bad_norms, bad_y, bad_zero_rows);
    if (y_dtype == IMS_DTYPE_F16)
        printf("l2_normalize_rows (%d, %d) -> f16%s: max norm rel %.3g, max y %ld ulp, %zu bad\n", n, d,
               specials ? " with zero/NaN/Inf/tiny/huge rows" : "", max_norm_rel, max_ulps,
               bad_norms + bad_y + bad_zero_rows);
    else
        printf("l2_normalize_rows (%d, %d) -> f32%s: max norm rel %.3g, max y rel %.3g, %zu bad\n", n, d,
               specials ? " with zero/NaN/Inf/tiny/huge rows" : "", max_norm_rel, max_y_rel,
               bad_norms + bad_y + bad_zero_rows);
    free(x);
}

/* ---- linear ------------------------------------------------------------------------- */

/* Error measure: |y - ref| / (sum_k |x w| + |bias|), ref the exact (double)
 * result. Dividing by the sum of magnitudes, not |ref|, keeps outputs that
 * cancel to near zero meaningful. fp32 GEMM (any summation order) stays near
 * 1e-7 here; LINEAR_TOL = 1e-4 is the requirement (the fp32 worst-case bound is
 * K * 2^-24 = 1.2e-4 at K = 2048). LINEAR_FP32_TOL = 1e-5 checks that the GEMM
 * really is fp32: TF32 tensor cores (10-bit mantissas) give ~1e-5 typical and
 * ~5e-5 worst over these shapes' outputs, fp32 ~3e-7 worst. */
#define LINEAR_TOL 1e-4
#define LINEAR_FP32_TOL 1e-5

static void linear_reference(const float *x, const float *w, const float *bias, double *ref, double *mag, int m,
                             int n, int k)
{
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            const float *xr = x + (size_t)r * k; // (K)
            const float *wc = w + (size_t)c * k; // (K)
            double s = bias ? bias[c] : 0.0, a = bias ? fabs(bias[c]) : 0.0;
            for (int i = 0; i < k; i++) {
                double p = (double)xr[i] * wc[i];
                s += p;
                a += fabs(p);
            }
            ref[(size_t)r * n + c] = s;
            mag[(size_t)r * n + c] = a;
        }
}

/* The largest error ratio of y against the reference (NaN counts as huge). */
static double linear_max_error(const float *y, const double *ref, const double *mag, size_t count)
{
    double worst = 0.0;
    for (size_t i = 0; i < count; i++) {
        double e = isnan(y[i]) ? 1e30 : fabs(y[i] - ref[i]) / (mag[i] > 0 ? mag[i] : 1.0);
        if (e > worst)
            worst = e;
    }
    return worst;
}

static void test_linear(int m, int n, int k, int with_bias, uint64_t *rng)
{
    float *x = test_xmalloc((size_t)m * k * sizeof *x);            // (M, K)
    float *w = test_xmalloc((size_t)n * k * sizeof *w);            // (N, K)
    float *b = test_xmalloc((size_t)n * sizeof *b);                // (N)
    double *ref = test_xmalloc((size_t)m * n * sizeof *ref);       // (M, N)
    double *mag = test_xmalloc((size_t)m * n * sizeof *mag);       // (M, N)
    for (size_t i = 0; i < (size_t)m * k; i++)
        x[i] = test_rand_uniform(rng, -1.0f, 1.0f);
    for (size_t i = 0; i < (size_t)n * k; i++)
        w[i] = test_rand_uniform(rng, -1.0f, 1.0f);
    for (int i = 0; i < n; i++)
        b[i] = test_rand_uniform(rng, -1.0f, 1.0f);
    linear_reference(x, w, with_bias ? b : NULL, ref, mag, m, n, k);

    int64_t xs[2] = {m, k}, ws[2] = {n, k}, bs[1] = {n}, ys[2] = {m, n};
    tensor_pair xt, wt, bt, yt;
    double cpu_err = 1e30, gpu_err = 1e30;
    memset(&bt, 0, sizeof bt);
    int ready = pair_input(&xt, IMS_DTYPE_F32, 2, xs, x);
    ready = pair_input(&wt, IMS_DTYPE_F32, 2, ws, w) && ready;
    if (with_bias)
        ready = pair_input(&bt, IMS_DTYPE_F32, 1, bs, b) && ready;
    ready = pair_output(&yt, IMS_DTYPE_F32, 2, ys) && ready;
    if (ready) {
        ims_error err = {0};
        test_check_ok(imsi_op_linear(cpu_be, &xt.cpu, &wt.cpu, with_bias ? &bt.cpu : NULL, &yt.cpu, &err), &err,
                 "linear on cpu");
        test_check_ok(imsi_op_linear(gpu_be, &xt.gpu, &wt.gpu, with_bias ? &bt.gpu : NULL, &yt.gpu, &err), &err,
                 "linear on cuda");
        void *want, *got; // (M, N), (M, N)
        if (pair_results(&yt, &want, &got)) {
            cpu_err = linear_max_error(want, ref, mag, (size_t)m * n);
            gpu_err = linear_max_error(got, ref, mag, (size_t)m * n);
            free(want);
            free(got);
        }
    }
    pair_free(&xt);
    pair_free(&wt);
    pair_free(&bt);
    pair_free(&yt);
    TEST_CHECK(cpu_err <= LINEAR_TOL, "linear (%d, %d, %d)%s on cpu: max error %.3g", m, n, k,
               with_bias ? " + bias" : "", cpu_err);
    TEST_CHECK(gpu_err <= LINEAR_TOL, "linear (%d, %d, %d)%s on cuda: max error %.3g", m, n, k,
               with_bias ? " + bias" : "", gpu_err);
    TEST_CHECK(gpu_err <= LINEAR_FP32_TOL, "linear (%d, %d, %d)%s on cuda: max error %.3g, not fp32 (TF32?)", m, n,
               k, with_bias ? " + bias" : "", gpu_err);
    printf("linear (M %d, N %d, K %d)%s: max error cpu %.3g, cuda %.3g (of sum |x w|)\n", m, n, k,
           with_bias ? " + bias" : "", cpu_err, gpu_err);
    free(x);
    free(w);
    free(b);
    free(ref);
    free(mag);
}

/* ---- Memory, info, errors ---------------------------------------------------------- */

static void test_round_trip(size_t n, uint64_t *rng)
{
    unsigned char *src = test_xmalloc(n), *back = test_xmalloc(n); // (n), (n)
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)test_rand_u64(rng);
    memset(back, 0, n);
    int64_t shape[1] = {(int64_t)n};
    imsi_tensor t;
    ims_error err = {0};
    int same = 0, filled = 0;
    if (test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_U8, 1, shape, &t, &err), &err, "round trip alloc")) {
        if (test_check_ok(imsi_backend_upload(gpu_be, &t, src, n, &err), &err, "round trip upload") &&
            test_check_ok(imsi_backend_download(gpu_be, back, n, &t, &err), &err, "round trip download"))
            same = memcmp(src, back, n) == 0;
        if (test_check_ok(imsi_backend_fill_bytes(gpu_be, &t, 0x5a, &err), &err, "fill_bytes") &&
            test_check_ok(imsi_backend_download(gpu_be, back, n, &t, &err), &err, "fill_bytes download")) {
            filled = 1;
            for (size_t i = 0; i < n; i++)
                filled &= back[i] == 0x5a;
        }
        imsi_tensor_free(&t);
    }
    TEST_CHECK(same, "upload/download of %zu random bytes does not round-trip", n);
    TEST_CHECK(filled, "fill_bytes 0x5a over %zu bytes did not fill every byte", n);
    printf("upload/download %zu bytes: %s; fill_bytes: %s\n", n, same ? "identical" : "DIFFER",
           filled ? "ok" : "WRONG");
    free(src);
    free(back);
}

static void test_huge_alloc(uint64_t *rng)
{
    int64_t shape[1] = {(int64_t)1 << 50};
    imsi_tensor t;
    ims_error err = {0};
    ims_status st = imsi_tensor_alloc(gpu_be, IMS_DTYPE_U8, 1, shape, &t, &err);
    TEST_CHECK(st == IMS_ERR_NOMEM, "2^50-byte allocation: %s (%s), expected out of memory", ims_status_name(st),
               err.msg);
    TEST_CHECK(err.msg[0] != '\0', "2^50-byte allocation failed without a message");
    TEST_CHECK(t.data == NULL, "a failed allocation left data set");
    if (st == IMS_OK)
        imsi_tensor_free(&t);
    printf("allocating 2^50 bytes: %s: %s\n", ims_status_name(st), err.msg);
    /* The backend must still work (a stale cudaMalloc error must not surface). */
    test_convert_f32_to_f16(1000, rng);
    test_linear(3, 17, 33, 1, rng);
}

static void test_info(void)
{
    const ims_backend_info *info = ims_backend_get_info(gpu_be);
    TEST_CHECK(info->kind == IMS_BACKEND_CUDA, "info kind %d", (int)info->kind);
    TEST_CHECK(strcmp(info->name, "cuda:0") == 0, "info name '%s', expected cuda:0", info->name);
    TEST_CHECK(info->device[0] != '\0', "info has no device name");
    TEST_CHECK(info->compute_major >= 1 && info->multiprocessors >= 1, "compute %d.%d, %d SMs", info->compute_major,
               info->compute_minor, info->multiprocessors);
    TEST_CHECK(info->memory_total > 0 && info->memory_free <= info->memory_total, "memory %llu free of %llu",
               (unsigned long long)info->memory_free, (unsigned long long)info->memory_total);
    TEST_CHECK(info->runtime_version > 0 && info->driver_version > 0 && info->cublas_version > 0 &&
                   info->cudnn_version > 0,
               "versions runtime %d driver %d cublas %d cudnn %d", info->runtime_version, info->driver_version,
               info->cublas_version, info->cudnn_version);
    TEST_CHECK(imsi_backend_memory(gpu_be) == IMS_MEMORY_DEVICE, "CUDA backend memory is not device memory");
    printf("info: %s = %s, sm_%d%d, %d SMs, %.0f of %.0f MiB free, driver %d runtime %d cublas %d cudnn %d\n",
           info->name, info->device, info->compute_major, info->compute_minor, info->multiprocessors,
           info->memory_free / 1048576.0, info->memory_total / 1048576.0, info->driver_version,
           info->runtime_version, info->cublas_version, info->cudnn_version);
}

/* A second backend on the same GPU can be created and destroyed; a device index
 * past the last one is an argument error. */
static void test_create_destroy(int count)
{
    ims_backend *be = NULL;
    ims_error err = {0};
    ims_status st = ims_backend_create(IMS_BACKEND_CUDA, count, &be, &err);
    TEST_CHECK(st == IMS_ERR_ARGUMENT && be == NULL, "device %d of %d: %s (%s)", count, count, ims_status_name(st),
               err.msg);
    if (test_check_ok(ims_backend_create(IMS_BACKEND_CUDA, 0, &be, &err), &err, "second CUDA backend"))
        ims_backend_free(be);
    printf("create/destroy: bad index -> %s; second backend ok\n", ims_status_name(st));
}

int main(void)
{
    char versions[512];
    imsi_cuda_versions(versions, sizeof versions);
    printf("%s", versions);
    int count = test_gpu_backends(&cpu_be, &gpu_be);
    ims_error err = {0};
    uint64_t rng = SEED;
    test_info();
    test_create_destroy(count);
    test_round_trip(1000003, &rng);

    /* Every size starts with the specials (n = 1: just +0.0; 300 on: all). */
    static const size_t convert_sizes[] = {1, 7, 300, 65537, 3000001};
    for (size_t i = 0; i < sizeof convert_sizes / sizeof convert_sizes[0]; i++)
        test_convert_f32_to_f16(convert_sizes[i], &rng);
    test_convert_f16_to_f32(1, &rng);
    test_convert_f16_to_f32(65536, &rng);
    test_convert_f16_to_f32(3000001, &rng);
    test_convert_copy(3000001, &rng);

    static const int l2_shapes[][3] = {
        /* n, d, special rows */
        {1, 1, 0}, {7, 300, 1}, {3, 33, 0}, {5, 256, 0}, {1000, 2048, 1}, {9, 4099, 1}, {70000, 16, 1},
    };
    for (size_t i = 0; i < sizeof l2_shapes / sizeof l2_shapes[0]; i++) {
        test_l2_normalize(l2_shapes[i][0], l2_shapes[i][1], IMS_DTYPE_F32, l2_shapes[i][2], &rng);
        test_l2_normalize(l2_shapes[i][0], l2_shapes[i][1], IMS_DTYPE_F16, l2_shapes[i][2], &rng);
    }

    /* M, N, K; the last two make the bias prefill loop over rows (M > 65535
     * grid rows) and over columns (N > 1024 blocks of 256). */
    static const int linear_shapes[][3] = {{1, 1, 1}, {3, 17, 33}, {64, 1000, 2048}, {70000, 3, 5}, {2, 300001, 3}};
    for (size_t i = 0; i < sizeof linear_shapes / sizeof linear_shapes[0]; i++)
        for (int bias = 0; bias <= 1; bias++)
            test_linear(linear_shapes[i][0], linear_shapes[i][1], linear_shapes[i][2], bias, &rng);

    test_huge_alloc(&rng);

    test_check_ok(imsi_backend_synchronize(gpu_be, &err), &err, "final synchronize");
    ims_backend_free(gpu_be);
    ims_backend_free(cpu_be);
    return test_finish();
}

#else /* CPU-only build */

int main(void)
{
    test_skip("built without CUDA");
    return 0;
}

#endif
