/*
 * quant_x86.c: the int8 weight quantizer with AVX2 and F16C, eight values a
 * step: the range pass is a min and a max per vector, the code pass one
 * IEEE division (vdivps is correctly rounded, as the reference's division
 * is), the rounding back to the weight's type (an integer add for bf16,
 * F16C for f16), vroundps to the nearest integer with ties to even, a clamp
 * and a saturating pack to int8.  Tails of rows use the reference's scalar
 * steps (quant.h), so every value is computed by the same formula.
 */
#include "kernels.h"
#include "quant.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,f16c")))
#define INLINE __attribute__((target("avx2,f16c"), always_inline)) static inline

/* Eight values from element k of a row, widened exactly to float. */
INLINE __m256 load8(ckpt_dtype dtype, const uint8_t *row, uint64_t k)
{
    if (dtype == CKPT_DTYPE_F32)
        return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)(row + 2 * k));
    if (dtype == CKPT_DTYPE_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* All ones in the lanes holding a NaN or an infinity. */
INLINE __m256i nonfinite8(__m256 v)
{
    __m256i mag = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7FFFFFFF));
    return _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7F7FFFFF));
}

/* Each lane rounded to the weight's type, ties to even (quant_round, eight at a time). */
INLINE __m256 round8(ckpt_dtype dtype, __m256 x)
{
    if (dtype == CKPT_DTYPE_BF16) {
        __m256i u = _mm256_castps_si256(x);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), odd));
        return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xFFFF0000u)));
    }
    if (dtype == CKPT_DTYPE_F16)
        return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return x;
}

/* Eight codes (quant_code) as 32-bit integers. */
INLINE __m256i code8(ckpt_dtype dtype, __m256 v, __m256 scale)
{
    __m256 x = round8(dtype, _mm256_div_ps(v, scale));
    x = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(x);
}

INLINE float lane_min(__m256 v)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_min_ss(m, _mm_shuffle_ps(m, m, 1)));
}

INLINE float lane_max(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
}

/* One row; false when it holds a NaN or an infinity. */
TARGET static bool row_fast(ckpt_dtype dtype, const uint8_t *row, uint64_t cols, int8_t *q, float *scale)
{
    __m256 lo8 = _mm256_setzero_ps(), hi8 = _mm256_setzero_ps();
    __m256i bad = _mm256_setzero_si256();
    uint64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 v = load8(dtype, row, k);
        bad = _mm256_or_si256(bad, nonfinite8(v));
        lo8 = _mm256_min_ps(lo8, v);
        hi8 = _mm256_max_ps(hi8, v);
    }
    if (!_mm256_testz_si256(bad, bad))
        return false;
    float lo = lane_min(lo8), hi = lane_max(hi8);
    for (; k < cols; k++) {
        float v = quant_load(dtype, row, k);
        if (!isfinite(v))
            return false;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    float s = quant_scale(dtype, lo, hi);
    *scale = s;
    if (!q)
        return true;
    __m256 sv = _mm256_set1_ps(s);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (k = 0; k + 32 <= cols; k += 32) {
        __m256i ab = _mm256_packs_epi32(code8(dtype, load8(dtype, row, k), sv),
                                        code8(dtype, load8(dtype, row, k + 8), sv));
        __m256i cd = _mm256_packs_epi32(code8(dtype, load8(dtype, row, k + 16), sv),
                                        code8(dtype, load8(dtype, row, k + 24), sv));
        /* the packs interleave 128-bit lanes: four-byte groups come out a0 b0 c0 d0 a1 b1 c1 d1 */
        __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
        _mm256_storeu_si256((__m256i *)(q + k), bytes);
    }
    for (; k < cols; k++)
        q[k] = quant_code(dtype, quant_load(dtype, row, k), s);
    return true;
}

bool quant_fast(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales, bool *ok,
                uint64_t *bad_row)
{
    if ((dtype != CKPT_DTYPE_BF16 && dtype != CKPT_DTYPE_F16 && dtype != CKPT_DTYPE_F32) || !cpu_has_avx2_f16c())
        return false;
    size_t esize = ckpt_dtype_size(dtype);
    const uint8_t *w = weight;
    *ok = true;
    for (uint64_t r = 0; r < rows; r++) {
        float s;
        if (!row_fast(dtype, w + r * cols * esize, cols, q ? q + r * cols : NULL, &s)) {
            *ok = false;
            *bad_row = r;
            return true;
        }
        if (scales)
            scales[r] = s;
    }
    return true;
}

#else

bool quant_fast(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales, bool *ok,
                uint64_t *bad_row)
{
    (void)dtype, (void)weight, (void)rows, (void)cols, (void)q, (void)scales, (void)ok, (void)bad_row;
    return false;
}

#endif
