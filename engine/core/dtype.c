/* dtype.c: element type sizes and names, the precision names, and IEEE binary16
 * conversion.
 *
 * The f32 -> f16 conversion rounds to nearest, ties to even, exactly like CUDA's
 * __float2half_rn, so that host-converted and device-converted tables agree bit
 * for bit (tests/unit/test_dtype.c checks every half value and the rounding rules).
 */
#include "imgsearch.h"

#include "core/error.h"

#include <string.h>

size_t ims_dtype_size(ims_dtype dtype)
{
    switch (dtype) {
    case IMS_DTYPE_F32: return 4;
    case IMS_DTYPE_F16: return 2;
    case IMS_DTYPE_I32: return 4;
    case IMS_DTYPE_U8: return 1;
    case IMS_DTYPE_I64: return 8;
    case IMS_DTYPE_F64: return 8;
    case IMS_DTYPE_COUNT: break;
    }
    return 0;
}

const char *ims_dtype_name(ims_dtype dtype)
{
    switch (dtype) {
    case IMS_DTYPE_F32: return "f32";
    case IMS_DTYPE_F16: return "f16";
    case IMS_DTYPE_I32: return "i32";
    case IMS_DTYPE_U8: return "u8";
    case IMS_DTYPE_I64: return "i64";
    case IMS_DTYPE_F64: return "f64";
    case IMS_DTYPE_COUNT: break;
    }
    return "?";
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t ims_f32_to_f16(float value)
{
    uint32_t x = f32_bits(value);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t abs = x & 0x7fffffffu;

    if (abs >= 0x7f800000u) /* Inf stays Inf; NaN becomes a quiet NaN with the top payload bits */
        return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x0200u | ((abs >> 13) & 0x3ffu) : 0));
    if (abs >= 0x477ff000u) /* >= 65520: rounds to beyond the largest half */
        return (uint16_t)(sign | 0x7c00u);
    if (abs < 0x38800000u) {
        /* Below the smallest normal half (2^-14): a subnormal half, or zero.
         * The half's unit is 2^-24; shift the 24-bit significand accordingly. */
        int exp = (int)(abs >> 23);
        if (exp < 102) /* < 2^-25: rounds to zero (2^-25 itself is a tie to even zero) */
            return sign;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        int shift = 126 - exp; /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rest = mant & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    /* Normal: rebias the exponent (127 -> 15) and round 23 mantissa bits to 10.
     * A carry out of the mantissa correctly bumps the exponent. */
    uint32_t half = (abs - 0x38000000u) >> 13;
    uint32_t rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
        half++;
    return (uint16_t)(sign | half);
}

float ims_f16_to_f32(uint16_t value)
{
    uint32_t sign = (uint32_t)(value & 0x8000u) << 16;
    uint32_t exp = (value >> 10) & 0x1fu;
    uint32_t mant = value & 0x3ffu;

    if (exp == 0x1f) /* Inf or NaN */
        return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return f32_from_bits(sign);
        /* Subnormal: value = mant * 2^-24, exact in f32. */
        float f = (float)mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

const char *ims_precision_name(ims_precision p)
{
    switch (p) {
    case IMS_PRECISION_FP32: return "fp32";
    case IMS_PRECISION_TF32: return "tf32";
    case IMS_PRECISION_FP16: return "fp16";
    }
    return "?";
}

ims_status ims_precision_parse(const char *text, ims_precision *out, ims_error *err)
{
    for (int p = IMS_PRECISION_FP32; p <= IMS_PRECISION_FP16; p++)
        if (!strcmp(text, ims_precision_name((ims_precision)p))) {
            *out = (ims_precision)p;
            return IMS_OK;
        }
    return ims_error_set(err, IMS_ERR_ARGUMENT, "unknown precision '%s' (fp32, tf32 or fp16)", text);
}
