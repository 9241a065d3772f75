/* fast_math.h: exp and erf written so that GCC vectorizes loops calling them
 * (no libm calls, no branches, no lookup tables), for the CPU fast paths of
 * bias_act (GELU) and attention (softmax). The strict paths call libm.
 *
 * Accuracy, measured against Python's math.erf / math.exp over their ranges:
 *   cpu_exp_f64: |relative error| < 1e-15 for x in [-700, 700];
 *   cpu_erf_f64: |absolute error| < 1e-11 everywhere, so GELU rounded to f32
 *                agrees with the libm version to the last bit but for rare
 *                ties;
 *   cpu_expf:    |relative error| < 2e-7 for x in [-87, 0] (the softmax's
 *                range), about one f32 ulp, against libm's expf.
 */
#ifndef IMS_CPU_FAST_MATH_H
#define IMS_CPU_FAST_MATH_H

#include <stdint.h>
#include <string.h>

/* On a function whose loops use these: GCC also compiles it for AVX2 + FMA
 * and for AVX-512, and the loader picks the widest the CPU has (ifunc), since
 * the build itself targets baseline x86-64 (SSE2: two doubles a vector). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define CPU_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CPU_SIMD_CLONES
#endif

/* e^x in double for x in [-700, 700] (callers clamp): x = n ln 2 + r,
 * |r| <= ln 2 / 2, e^r by its Taylor series to r^13 (error 5e-18), 2^n by
 * writing the exponent field. The rounding of x / ln 2 to n uses the 1.5 2^52
 * trick, which leaves n in the low bits of the sum: no float-to-int64
 * conversion, which SSE2 and AVX2 lack. */
static inline double cpu_exp_f64(double x)
{
    const double shift = 6755399441055744.0; /* 1.5 2^52 */
    double kd = x * 1.4426950408889634 + shift;
    double n = kd - shift;
    double r = x - n * 0.6931471803691238;   /* ln 2, high 32 bits */
    r = r - n * 1.9082149292705877e-10;      /* ln 2, the rest */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t bits;
    memcpy(&bits, &kd, sizeof bits);
    bits = (bits + 1023) << 52; /* low bits of kd: n, two's complement */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) in double. |x| < 1: its Taylor series (13 terms, error < 7e-12);
 * beyond: 1 - e^(-x^2) g(t), t = 1 / (1 + x / 2), g a degree-12 polynomial
 * fitted to erfc(x) e^(x^2) on [1, 6] (relative error < 5e-13); |x| is
 * clamped to 6, where erfc is 2e-17. Both are computed and one selected, so
 * the loop stays branch-free. */
static inline double cpu_erf_f64(double x)
{
    double a = __builtin_fabs(x);
    double s = a * a;
    double p = 9.4227590646504113e-11;
    p = p * s - 1.2290555301717926e-09;
    p = p * s + 1.4807192815879218e-08;
    p = p * s - 1.6365844691234924e-07;
    p = p * s + 1.6462114365889246e-06;
    p = p * s - 1.492565035840625e-05;
    p = p * s + 0.00012055332981789664;
    p = p * s - 0.00085483270234508522;
    p = p * s + 0.0052239776254421879;
    p = p * s - 0.026866170645131252;
    p = p * s + 0.11283791670955126;
    p = p * s - 0.37612638903183754;
    p = p * s + 1.1283791670955126;
    double small = a * p;
    double c = a;
    if (c > 6.0)
        c = 6.0;
    double t = 1.0 / (1.0 + 0.5 * c);
    double g = -0.027314456300132069;
    g = g * t + 0.22488801915695023;
    g = g * t - 0.75982914946291291;
    g = g * t + 1.3684224246160979;
    g = g * t - 1.3919068361301536;
    g = g * t + 0.81268437055177689;
    g = g * t - 0.40341114481100709;
    g = g * t + 0.21599519620439311;
    g = g * t + 0.14468010598534761;
    g = g * t + 0.25217293067491503;
    g = g * t + 0.28148981775748433;
    g = g * t + 0.28213610972193404;
    g = g * t - 1.2866872775296745e-06;
    double large = 1.0 - cpu_exp_f64(-c * c) * g;
    double e = large;
    if (a < 1.0)
        e = small;
    return __builtin_copysign(e, x);
}

/* e^x in float for x <= 0 (the softmax's x - max; x below -87 gives 0):
 * x = n ln 2 + r, e^r by a degree-7 Taylor polynomial (error 5e-9 on
 * |r| <= ln 2 / 2), 2^n through the exponent field. */
static inline float cpu_expf(float x)
{
    const float shift = 12582912.0f; /* 1.5 2^23 */
    float xc = x < -87.0f ? -87.0f : x;
    float kd = xc * 1.44269504f + shift;
    float n = kd - shift;
    float r = xc - n * 0.693145752f; /* ln 2, high bits */
    r = r - n * 1.42860677e-6f;      /* ln 2, the rest */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &kd, sizeof bits);
    bits = (bits + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < -87.0f ? 0.0f : y;
}

#endif
