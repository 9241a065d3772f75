/* test_dtype.c: dtype sizes and names, and the f16 conversions.
 *
 * f16 -> f32 -> f16 must be the identity on every non-NaN half. f32 -> f16 is
 * checked against the compiler's _Float16 conversion (an independent RNE
 * implementation) on a dense sample of all floats and on every rounding tie
 * and its neighbours, and, independently of the compiler, for the property
 * "no representable half is closer, ties go to the even one".
 */
#include "test.h"

#include <math.h>
#include <string.h>

/* Nearest-even property checked in double: compare with both neighbours. */
static int rounding_is_nearest_even(float x, uint16_t h)
{
    if (isnan(x))
        return test_half_is_nan(h);
    double hv = ims_f16_to_f32(h);
    if (isinf(hv))
        return fabs((double)x) >= 65520.0 && (signbit(x) != 0) == ((h & 0x8000u) != 0);
    double err = fabs((double)x - hv);
    uint16_t mag = h & 0x7fffu;
    uint16_t sign = h & 0x8000u;
    uint16_t neighbours[2] = {(uint16_t)(mag ? mag - 1 : 0), (uint16_t)(mag + 1)};
    for (int i = 0; i < 2; i++) {
        if (neighbours[i] >= 0x7c00u)
            continue;
        double nv = ims_f16_to_f32((uint16_t)(sign | neighbours[i]));
        double nerr = fabs((double)x - nv);
        if (nerr < err)
            return 0;
        if (nerr == err && neighbours[i] != mag && (mag & 1u))
            return 0; /* a tie must land on the even significand */
    }
    return 1;
}

static void check_one(float x, int *mismatches)
{
    uint16_t h = ims_f32_to_f16(x);
    int ok = rounding_is_nearest_even(x, h);
#ifdef __FLT16_MAX__
    _Float16 ref = (_Float16)x;
    uint16_t ref_bits;
    memcpy(&ref_bits, &ref, sizeof ref_bits);
    ok = ok && (isnan(x) ? test_half_is_nan(ref_bits) : ref_bits == h);
#endif
    if (!ok && (*mismatches)++ < 10)
        TEST_CHECK(ok, "f32 %.9g -> f16 0x%04x is not the nearest-even half", (double)x, h);
}

int main(void)
{
    TEST_CHECK(ims_dtype_size(IMS_DTYPE_F32) == 4 && ims_dtype_size(IMS_DTYPE_F16) == 2, "sizes");
    TEST_CHECK(ims_dtype_size(IMS_DTYPE_I32) == 4 && ims_dtype_size(IMS_DTYPE_U8) == 1, "sizes");
    TEST_CHECK(ims_dtype_size(IMS_DTYPE_COUNT) == 0, "unknown dtype has size 0");
    TEST_CHECK(strcmp(ims_dtype_name(IMS_DTYPE_F16), "f16") == 0, "name");

    int identity_failures = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (test_half_is_nan((uint16_t)h)) {
            TEST_CHECK(isnan(ims_f16_to_f32((uint16_t)h)), "NaN half 0x%04x", h);
            TEST_CHECK(test_half_is_nan(ims_f32_to_f16(ims_f16_to_f32((uint16_t)h))), "NaN stays NaN 0x%04x", h);
            continue;
        }
        uint16_t back = ims_f32_to_f16(ims_f16_to_f32((uint16_t)h));
        if (back != h && identity_failures++ < 10)
            TEST_CHECK(back == h, "half 0x%04x -> %g -> 0x%04x", h, (double)ims_f16_to_f32((uint16_t)h), back);
    }
    TEST_CHECK(identity_failures == 0, "%d halves do not round-trip", identity_failures);

    /* Known values. */
    TEST_CHECK(ims_f32_to_f16(1.0f) == 0x3c00, "1.0");
    TEST_CHECK(ims_f32_to_f16(-2.0f) == 0xc000, "-2.0");
    TEST_CHECK(ims_f32_to_f16(65504.0f) == 0x7bff, "max half");
    TEST_CHECK(ims_f32_to_f16(65519.996f) == 0x7bff, "just below the overflow tie");
    TEST_CHECK(ims_f32_to_f16(65520.0f) == 0x7c00, "the overflow tie rounds to Inf");
    TEST_CHECK(ims_f32_to_f16(-0.0f) == 0x8000, "-0");
    TEST_CHECK(ims_f32_to_f16(5.9604644775390625e-8f) == 0x0001, "smallest subnormal");
    TEST_CHECK(ims_f32_to_f16(2.98023223876953125e-8f) == 0x0000, "2^-25 ties to even zero");
    TEST_CHECK(ims_f32_to_f16(2.9802326e-8f) == 0x0001, "just above 2^-25 rounds up");
    TEST_CHECK(ims_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "1 + half ulp ties to even (down)");
    TEST_CHECK(ims_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "1 + 1.5 ulp ties to even (up)");
    TEST_CHECK(ims_f16_to_f32(0x0001) == 5.9604644775390625e-8f, "subnormal to f32");
    TEST_CHECK(isinf(ims_f16_to_f32(0xfc00)) && ims_f16_to_f32(0xfc00) < 0, "-Inf");

    int mismatches = 0;
    /* Every tie between adjacent halves, and the floats just beside it. */
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        double lo = ims_f16_to_f32((uint16_t)h), hi = h + 1 < 0x7c00u ? ims_f16_to_f32((uint16_t)(h + 1)) : 65536.0;
        float mid = (float)((lo + hi) / 2); /* exact: a half's midpoint needs 12 significant bits */
        check_one(mid, &mismatches);
        check_one(-mid, &mismatches);
        check_one(nextafterf(mid, 0.0f), &mismatches);
        check_one(nextafterf(mid, INFINITY), &mismatches);
    }
    /* A dense stride through all 2^32 float bit patterns. */
    for (uint64_t bits = 0; bits < (1ull << 32); bits += 1009)
        check_one(test_f32_from_bits((uint32_t)bits), &mismatches);
    check_one(INFINITY, &mismatches);
    check_one(-INFINITY, &mismatches);
    check_one(NAN, &mismatches);
    check_one(1e-45f, &mismatches);
    TEST_CHECK(mismatches == 0, "%d f32 -> f16 conversions are not nearest-even", mismatches);
    return test_finish();
}
