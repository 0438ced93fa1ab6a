/*
 * cast_portable.c: element-type conversion between F64, F32, F16, BF16, F8_E4M3 (fn)
 * and F8_E5M2, bit-identical to PyTorch's tensor.to(dtype).
 *
 * Every narrowing goes through float, as torch's does (so F64 -> F16 rounds
 * twice, exactly like torch), then rounds to nearest even into the target.
 * What torch does beyond that, and what we choose:
 *   - finite values past the target's range: torch gives infinity (NaN for
 *     e4m3fn, which has no infinity).  That is CKPT_OVERFLOW_INF; the default
 *     CKPT_OVERFLOW_SATURATE gives the largest finite value instead, and
 *     CKPT_OVERFLOW_ERROR refuses.  Infinite inputs stay infinite (NaN for
 *     e4m3fn) under every policy: they did not overflow here.
 *   - NaN stays NaN with its sign, as the canonical quiet NaN of the target:
 *     0x7E00 (f16), 0x7FC0 (bf16), 0x7F (e4m3fn and e5m2, as torch's
 *     fp8e*_from_fp32_value give), 0x7FC00000, 0x7FF8000000000000.  torch
 *     itself is not consistent here (f32 -> bf16 gives 0xFFFF from its
 *     vectorised loop, 0x7FC0 without the sign from its scalar one; widening
 *     keeps payloads), so only "NaN, same sign" can be promised.
 *   - counts: `overflowed` counts finite inputs past the target's range,
 *     `subnormal` non-zero subnormal results, `flushed` non-zero finite
 *     inputs that became zero (also when the rounding to float did it).
 * The portable code here is the reference; cast_x86.c has the fast paths and
 * cast.c chooses between them.
 */
#include "kernels.h"

#include "libckpt/common/error.h"

#include <math.h>
#include <string.h>

/* A narrow binary float format. */
struct narrow {
    int mbits;           /* mantissa bits */
    int emin;            /* exponent of the smallest normal */
    uint32_t max_code;   /* magnitude bits of the largest finite value */
    uint32_t inf_code;   /* magnitude bits of infinity, or 0 when there is none */
    uint32_t nan_code;   /* magnitude bits of the canonical quiet NaN */
    int sign_shift;      /* position of the sign bit */
};

static const struct narrow fmt_f16 = {10, -14, 0x7BFF, 0x7C00, 0x7E00, 15};
static const struct narrow fmt_bf16 = {7, -126, 0x7F7F, 0x7F80, 0x7FC0, 15};
static const struct narrow fmt_e4m3 = {3, -6, 0x7E, 0, 0x7F, 7};
static const struct narrow fmt_e5m2 = {2, -14, 0x7B, 0x7C, 0x7F, 7};

static const struct narrow *narrow_of(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DTYPE_F16: return &fmt_f16;
    case CKPT_DTYPE_BF16: return &fmt_bf16;
    case CKPT_DTYPE_F8_E4M3: return &fmt_e4m3;
    case CKPT_DTYPE_F8_E5M2: return &fmt_e5m2;
    default: return NULL;
    }
}

/*
 * `v` (a float's value, or infinity from an overflowing double) to the
 * narrow format's magnitude bits.  Exact arithmetic: scaling by powers of
 * two is exact in double and rint() rounds to nearest even.
 */
static uint32_t encode_magnitude(double a, const struct narrow *t, bool finite_input, ckpt_overflow policy,
                                 enum cast_class *cls)
{
    *cls = CAST_EXACT_OR_ROUNDED;
    if (isnan(a))
        return t->nan_code;
    if (isinf(a) && !finite_input)
        return t->inf_code ? t->inf_code : t->nan_code;
    uint32_t code;
    if (isinf(a)) {
        code = UINT32_MAX;   /* a finite double beyond float's range */
    } else if (a < ldexp(1.0, t->emin)) {
        code = (uint32_t)rint(a * ldexp(1.0, t->mbits - t->emin));   /* subnormal step 2^(emin - mbits) */
        if (code == 0 && a != 0)
            *cls = CAST_FLUSHED;
        else if (code != 0 && code < (1u << t->mbits))
            *cls = CAST_SUBNORMAL;
    } else {
        int e;
        frexp(a, &e);   /* a = f * 2^e, f in [0.5, 1) */
        e -= 1;         /* a = 1.xxx * 2^e */
        double q = rint(ldexp(a, t->mbits - e));   /* in [2^mbits, 2^(mbits+1)] */
        if (q >= ldexp(1.0, t->mbits + 1)) {
            q /= 2;
            e += 1;
        }
        int64_t biased = (int64_t)e - t->emin + 1;
        code = biased >= (1 << 20) ? UINT32_MAX : (uint32_t)((biased << t->mbits) | ((uint64_t)q - (1u << t->mbits)));
    }
    if (code > t->max_code) {
        *cls = CAST_OVERFLOW;
        if (policy == CKPT_OVERFLOW_SATURATE)
            return t->max_code;
        return t->inf_code ? t->inf_code : t->nan_code;
    }
    return code;
}

static void count(ckpt_cast_counts *counts, enum cast_class cls)
{
    if (!counts)
        return;
    counts->overflowed += cls == CAST_OVERFLOW;
    counts->subnormal += cls == CAST_SUBNORMAL;
    counts->flushed += cls == CAST_FLUSHED;
}

/* ---- decoding: every floating type is exact in double ---- */

static double narrow_value(uint32_t bits, const struct narrow *t)
{
    uint32_t sign = bits >> t->sign_shift & 1, mag = bits & ((1u << t->sign_shift) - 1);
    double v;
    if (t->inf_code && mag == t->inf_code)
        v = INFINITY;
    else if (mag > t->max_code && mag != t->inf_code)
        v = NAN;
    else if (mag >> t->mbits == 0)
        v = ldexp((double)mag, t->emin - t->mbits);
    else
        v = ldexp((double)((mag & ((1u << t->mbits) - 1)) | (1u << t->mbits)),
                  (int)(mag >> t->mbits) - 1 + t->emin - t->mbits);
    return sign ? -v : v;
}

static double load(ckpt_dtype d, const uint8_t *p, size_t i)
{
    float f;
    double x;
    uint16_t h;
    switch (d) {
    case CKPT_DTYPE_F64: memcpy(&x, p + 8 * i, 8); return x;
    case CKPT_DTYPE_F32: memcpy(&f, p + 4 * i, 4); return f;
    case CKPT_DTYPE_F16:
    case CKPT_DTYPE_BF16: memcpy(&h, p + 2 * i, 2); return narrow_value(h, narrow_of(d));
    default: return narrow_value(p[i], narrow_of(d));
    }
}

static bool is_castable(ckpt_dtype d)
{
    return d == CKPT_DTYPE_F64 || d == CKPT_DTYPE_F32 || narrow_of(d) != NULL;
}

int cast_portable(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t n, ckpt_overflow overflow,
                  ckpt_cast_counts *counts, ckpt_error *err)
{
    if (!is_castable(from) || !is_castable(to))
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "no cast from %s to %s", ckpt_dtype_name(from),
                         ckpt_dtype_name(to));
    const uint8_t *s = src;
    uint8_t *o = dst;
    const struct narrow *t = narrow_of(to);
    uint64_t overflowed = 0;
    for (size_t i = 0; i < n; i++) {
        double v = load(from, s, i);
        bool finite_input = isfinite(v);
        if (to == CKPT_DTYPE_F64) {
            if (isnan(v))
                v = copysign(NAN, v);
            memcpy(o + 8 * i, &v, 8);
            continue;
        }
        /* torch narrows through float: the first rounding happens here; NaN payloads go */
        float f = isnan(v) ? copysignf(NAN, signbit(v) ? -1.0f : 1.0f) : (float)v;
        enum cast_class cls = CAST_EXACT_OR_ROUNDED;
        if (to == CKPT_DTYPE_F32 && from != CKPT_DTYPE_F64) {
            memcpy(o + 4 * i, &f, 4);   /* widening: exact, nothing to count */
            continue;
        }
        if (to == CKPT_DTYPE_F32) {
            if (finite_input && isinf(f)) {
                cls = CAST_OVERFLOW;
                if (overflow == CKPT_OVERFLOW_SATURATE)
                    f = copysignf(3.40282347e38f, f);
            } else if (v != 0 && f == 0) {
                cls = CAST_FLUSHED;
            } else if (fpclassify(f) == FP_SUBNORMAL) {
                cls = CAST_SUBNORMAL;
            }
            memcpy(o + 4 * i, &f, 4);
        } else {
            uint32_t code = encode_magnitude(fabs((double)f), t, finite_input, overflow, &cls);
            if (code == 0 && v != 0)   /* an f64 the rounding to float already flushed */
                cls = CAST_FLUSHED;
            code |= (uint32_t)(signbit(f) ? 1 : 0) << t->sign_shift;
            if (t->sign_shift == 15) {
                uint16_t h = (uint16_t)code;
                memcpy(o + 2 * i, &h, 2);
            } else {
                o[i] = (uint8_t)code;
            }
        }
        overflowed += cls == CAST_OVERFLOW;
        count(counts, cls);
    }
    if (overflow == CKPT_OVERFLOW_ERROR && overflowed)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%llu values overflow %s", (unsigned long long)overflowed,
                         ckpt_dtype_name(to));
    return CKPT_OK;
}
