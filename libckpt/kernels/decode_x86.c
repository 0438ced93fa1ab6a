/*
 * decode_x86.c: decode.c's two hot loops with AVX2 and F16C, which verify
 * --against runs over every element: f16 and bf16 to double, eight at a
 * time (F16C's conversion is exact, subnormals included; a NaN stays a NaN,
 * which is all decode's callers look at), and the error maxima, four at a
 * time.  decode.c falls back to its portable loops on other CPUs.
 */
#include "decode.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,f16c")))

TARGET static void halves_to_f64(ckpt_dtype dtype, const uint16_t *p, double *out, uint64_t count)
{
    uint64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(p + i));
        __m256 f = dtype == CKPT_DTYPE_F16 ? _mm256_cvtph_ps(h)
                                           : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        _mm256_storeu_pd(out + i, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
        _mm256_storeu_pd(out + i + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
    }
    for (; i < count; i++) {
        uint16_t h = p[i];
        float f;
        if (dtype == CKPT_DTYPE_F16) {
            f = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
        } else {
            uint32_t u = (uint32_t)h << 16;
            memcpy(&f, &u, 4);
        }
        out[i] = f;
    }
}

bool decode_f64_fast(ckpt_dtype dtype, const void *src, double *out, uint64_t count)
{
    if ((dtype != CKPT_DTYPE_F16 && dtype != CKPT_DTYPE_BF16) || !cpu_has_avx2_f16c())
        return false;
    halves_to_f64(dtype, src, out, count);
    return true;
}

/*
 * The maxima of |b - a| and |b - a| / |a| over finite pairs, four lanes at a
 * time: a pair with a non-finite side contributes 0 (the maxima start at 0),
 * and so does the quotient of a zero a.  Maxima do not depend on order, so
 * the result is the portable loop's, bit for bit.
 */
TARGET static void errors_avx2(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err)
{
    const __m256d sign = _mm256_set1_pd(-0.0), inf = _mm256_set1_pd(INFINITY), zero = _mm256_setzero_pd();
    __m256d amax = _mm256_set1_pd(*abs_err), rmax = _mm256_set1_pd(*rel_err);
    uint64_t i = 0;
    for (; i + 4 <= count; i += 4) {
        __m256d x = _mm256_loadu_pd(a + i), y = _mm256_loadu_pd(b + i);
        __m256d ax = _mm256_andnot_pd(sign, x), ay = _mm256_andnot_pd(sign, y);
        __m256d finite = _mm256_and_pd(_mm256_cmp_pd(ax, inf, _CMP_LT_OQ), _mm256_cmp_pd(ay, inf, _CMP_LT_OQ));
        __m256d d = _mm256_and_pd(finite, _mm256_andnot_pd(sign, _mm256_sub_pd(y, x)));
        amax = _mm256_max_pd(amax, d);
        __m256d nonzero = _mm256_and_pd(finite, _mm256_cmp_pd(ax, zero, _CMP_NEQ_OQ));
        __m256d q = _mm256_and_pd(nonzero, _mm256_div_pd(d, _mm256_blendv_pd(_mm256_set1_pd(1.0), ax, nonzero)));
        rmax = _mm256_max_pd(rmax, q);
    }
    double am[4], rm[4];
    _mm256_storeu_pd(am, amax);
    _mm256_storeu_pd(rm, rmax);
    for (int k = 0; k < 4; k++) {
        if (am[k] > *abs_err)
            *abs_err = am[k];
        if (rm[k] > *rel_err)
            *rel_err = rm[k];
    }
    for (; i < count; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            continue;
        double d = fabs(b[i] - a[i]);
        if (d > *abs_err)
            *abs_err = d;
        if (a[i] != 0 && d / fabs(a[i]) > *rel_err)
            *rel_err = d / fabs(a[i]);
    }
}

bool error_update_fast(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err)
{
    if (!cpu_has_avx2_f16c())
        return false;
    errors_avx2(a, b, count, abs_err, rel_err);
    return true;
}

#else

bool decode_f64_fast(ckpt_dtype dtype, const void *src, double *out, uint64_t count)
{
    (void)dtype;
    (void)src;
    (void)out;
    (void)count;
    return false;
}

bool error_update_fast(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err)
{
    (void)a;
    (void)b;
    (void)count;
    (void)abs_err;
    (void)rel_err;
    return false;
}

#endif
