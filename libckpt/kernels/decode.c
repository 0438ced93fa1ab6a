/* decode.c: see decode.h. */
#include "decode.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* A small float format: `mbits` mantissa bits, exponent bias `bias`; `ieee_top` says whether the
 * all-ones exponent holds infinities and NaNs (e5m2) or ordinary values but one NaN (e4m3fn). */
static double small_float(unsigned bits, int ebits, int mbits, int bias, int ieee_top)
{
    unsigned sign = bits >> (ebits + mbits), e = (bits >> mbits) & ((1u << ebits) - 1), m = bits & ((1u << mbits) - 1);
    double v;
    if (ieee_top && e == (1u << ebits) - 1)
        v = m ? NAN : INFINITY;
    else if (!ieee_top && e == (1u << ebits) - 1 && m == (1u << mbits) - 1)
        v = NAN;
    else if (e == 0)
        v = ldexp((double)m, 1 - bias - mbits);
    else
        v = ldexp((double)(m | (1u << mbits)), (int)e - bias - mbits);
    return sign ? -v : v;
}

/* f16 by its bits: exact, and without ldexp, which verify --against would call for every element. */
static inline double f16_value(uint16_t h)
{
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    float f;
    if (e == 0x1f)
        return h >> 15 ? (m ? -NAN : -INFINITY) : (m ? NAN : INFINITY);
    if (e == 0) {
        f = (float)m * 0x1p-24f;   /* m < 2^10 and a power of two: exact */
    } else {
        bits = (e + 112) << 23 | m << 13;   /* exponent rebased from 15 to 127 */
        memcpy(&f, &bits, 4);
    }
    return h >> 15 ? -(double)f : (double)f;
}

/* The values of the 8-bit float formats, by byte, computed once. */
static double e4m3_values[256], e5m2_values[256], e8m0_values[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void fill_tables(void)
{
    for (unsigned b = 0; b < 256; b++) {
        e4m3_values[b] = small_float(b, 4, 3, 7, 0);
        e5m2_values[b] = small_float(b, 5, 2, 15, 1);
        e8m0_values[b] = b == 0xff ? NAN : ldexp(1.0, (int)b - 127);
    }
}

static void decode_table(const double *table, const uint8_t *p, double *out, uint64_t count)
{
    pthread_once(&tables_once, fill_tables);
    for (uint64_t i = 0; i < count; i++)
        out[i] = table[p[i]];
}

void decode_f64(ckpt_dtype dtype, const void *src, double *out, uint64_t count)
{
    const uint8_t *p = src;
    if (decode_f64_fast(dtype, src, out, count))
        return;
    /* the floating-point types one loop each: no switch per element */
    switch (dtype) {
    case CKPT_DTYPE_F16:
        for (uint64_t i = 0; i < count; i++) {
            uint16_t u16;
            memcpy(&u16, p + 2 * i, 2);
            out[i] = f16_value(u16);
        }
        return;
    case CKPT_DTYPE_BF16:
        for (uint64_t i = 0; i < count; i++) {
            uint16_t u16;
            memcpy(&u16, p + 2 * i, 2);
            uint32_t u32 = (uint32_t)u16 << 16;
            float f;
            memcpy(&f, &u32, 4);
            out[i] = f;
        }
        return;
    case CKPT_DTYPE_F32:
        for (uint64_t i = 0; i < count; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            out[i] = f;
        }
        return;
    case CKPT_DTYPE_F8_E4M3: decode_table(e4m3_values, p, out, count); return;
    case CKPT_DTYPE_F8_E5M2: decode_table(e5m2_values, p, out, count); return;
    case CKPT_DTYPE_F8_E8M0: decode_table(e8m0_values, p, out, count); return;
    default: break;
    }
    size_t es = ckpt_dtype_size(dtype);
    for (uint64_t i = 0; i < count; i++, p += es) {
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        float f;
        double d;
        switch (dtype) {
        case CKPT_DTYPE_BOOL:
        case CKPT_DTYPE_U8: out[i] = p[0]; break;
        case CKPT_DTYPE_I8: out[i] = (int8_t)p[0]; break;
        case CKPT_DTYPE_I16: memcpy(&u16, p, 2); out[i] = (int16_t)u16; break;
        case CKPT_DTYPE_U16: memcpy(&u16, p, 2); out[i] = u16; break;
        case CKPT_DTYPE_I32: memcpy(&u32, p, 4); out[i] = (int32_t)u32; break;
        case CKPT_DTYPE_U32: memcpy(&u32, p, 4); out[i] = u32; break;
        case CKPT_DTYPE_I64: memcpy(&u64, p, 8); out[i] = (double)(int64_t)u64; break;
        case CKPT_DTYPE_U64: memcpy(&u64, p, 8); out[i] = (double)u64; break;
        case CKPT_DTYPE_F16: memcpy(&u16, p, 2); out[i] = small_float(u16, 5, 10, 15, 1); break;
        case CKPT_DTYPE_BF16: memcpy(&u16, p, 2); u32 = (uint32_t)u16 << 16; memcpy(&f, &u32, 4); out[i] = f; break;
        case CKPT_DTYPE_F32: memcpy(&f, p, 4); out[i] = f; break;
        case CKPT_DTYPE_F64: memcpy(&d, p, 8); out[i] = d; break;
        case CKPT_DTYPE_F8_E4M3: out[i] = small_float(p[0], 4, 3, 7, 0); break;
        case CKPT_DTYPE_F8_E5M2: out[i] = small_float(p[0], 5, 2, 15, 1); break;
        case CKPT_DTYPE_F8_E8M0: out[i] = p[0] == 0xff ? NAN : ldexp(1.0, (int)p[0] - 127); break;
        default: out[i] = NAN; break;   /* FNUZ and complex types: compared on bits only */
        }
    }
}

void error_update(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err)
{
    if (error_update_fast(a, b, count, abs_err, rel_err))
        return;
    for (uint64_t i = 0; i < count; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            continue;
        double d = fabs(b[i] - a[i]), m = fabs(a[i]);
        if (d > *abs_err)
            *abs_err = d;
        /* divide only when the error may beat the largest so far: the product, a little below the
         * exact bound so that its rounding cannot hide a larger quotient, screens the rest */
        if (m != 0 && d >= *rel_err * m * (1 - 0x1p-40) && d / m > *rel_err)
            *rel_err = d / m;
    }
}

void energy_update(const double *a, const double *b, uint64_t count, double *signal, double *noise)
{
    for (uint64_t i = 0; i < count; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            continue;
        *signal += a[i] * a[i];
        *noise += (b[i] - a[i]) * (b[i] - a[i]);
    }
}

double sqnr_db(double signal, double noise)
{
    if (noise == 0)
        return INFINITY;
    if (signal == 0)
        return -INFINITY;
    return 10 * log10(signal / noise);
}
