/*
 * quant.h: the scalar steps of the int8 weight quantizer (quant.c), shared
 * by the portable reference and the tails of the vectorised path
 * (quant_x86.c), so that both round every operation the same way.
 *
 * The quantizer computes in the weight's own type, as torch does on the CPU
 * for a tensor of that type: a 16-bit operand is widened to float, the
 * operation is one IEEE float operation, and the result is rounded back to
 * the 16-bit type (round to nearest even, subnormals kept).  float32 is
 * computed in float, float64 in double.
 */
#ifndef CKPT_KERNELS_QUANT_H
#define CKPT_KERNELS_QUANT_H

#include "ckpt.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* float32's machine epsilon, 2^-23: the scale's floor, exact in every type quantized (a f16 subnormal). */
#define QUANT_EPS 0x1p-23

static inline uint32_t quant_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float quant_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Element i of a row of F16, BF16 or F32 values, exactly as a float (float16 subnormals included). */
static inline float quant_load(ckpt_dtype dtype, const void *row, uint64_t i)
{
    if (dtype == CKPT_DTYPE_F32)
        return ((const float *)row)[i];
    uint16_t h = ((const uint16_t *)row)[i];
    if (dtype == CKPT_DTYPE_BF16)
        return quant_bits_f32((uint32_t)h << 16);
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    float mag = exp == 0 ? (float)man * 0x1p-24f
              : exp == 31 ? (man ? NAN : INFINITY)
                          : quant_bits_f32(((exp + 112) << 23) | (man << 13));
    return quant_bits_f32(quant_f32_bits(mag) | sign);
}

/* A finite float rounded to the nearest bfloat16, ties to even (bf16 shares float's exponent range). */
static inline float quant_round_bf16(float f)
{
    uint32_t u = quant_f32_bits(f);
    return quant_bits_f32((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
}

/*
 * A finite float rounded to the nearest float16 value, ties to even: in the
 * subnormal range (below 2^-14) by counting units of 2^-24, which the float
 * holds exactly; above it by rounding away 13 mantissa bits.  Values past
 * 65504 are never rounded here (the quantizer's operands stay below 2^8 or
 * are the weight's own values).
 */
static inline float quant_round_f16(float f)
{
    float a = fabsf(f);
    if (a < 0x1p-14f)
        return copysignf(nearbyintf(a * 0x1p24f) * 0x1p-24f, f);
    uint32_t u = quant_f32_bits(f);
    return quant_bits_f32((u + 0xFFFu + ((u >> 13) & 1u)) & 0xFFFFE000u);
}

/* One operation's result rounded to `dtype` (F16, BF16; F32 results are already float). */
static inline float quant_round(ckpt_dtype dtype, float f)
{
    return dtype == CKPT_DTYPE_BF16 ? quant_round_bf16(f) : dtype == CKPT_DTYPE_F16 ? quant_round_f16(f) : f;
}

/*
 * The scale of a row whose values lie in [lo, hi], with lo <= 0 <= hi (the
 * row's min and max with zero): max(-lo, hi) / 127 rounded to the type,
 * floored at QUANT_EPS.  -lo is exact; the larger of two values is exact.
 */
static inline float quant_scale(ckpt_dtype dtype, float lo, float hi)
{
    float top = -lo > hi ? -lo : hi;
    float s = quant_round(dtype, top / 127.0f);
    return s < (float)QUANT_EPS ? (float)QUANT_EPS : s;
}

/* One value's code: w / scale rounded to the type, then to the nearest integer (ties to even), clamped. */
static inline int8_t quant_code(ckpt_dtype dtype, float w, float scale)
{
    float q = nearbyintf(quant_round(dtype, w / scale));
    return (int8_t)(q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q);
}

#endif
