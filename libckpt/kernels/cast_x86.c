/*
 * cast_x86.c: AVX2 + F16C paths for the conversions every checkpoint
 * needs (bf16/f32 -> f16, f32 -> bf16, fp8 -> f32/f16/bf16, and 16-bit
 * types back to f32), chosen at run time.
 *
 * Each converts 8 values a step and classifies the results the same way
 * the reference does (cast.c), from the result bits: overflowed (finite
 * input, infinite result), subnormal, flushed to zero.  NaNs are then made
 * canonical and overflows saturated by blending, so no branch sits in the
 * loop.  The tail is left to the reference.
 */
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#define TARGET __attribute__((target("avx2,f16c")))
/* helpers must inline into the loop: called, they would pass vectors through memory */
#define INLINE __attribute__((target("avx2,f16c"), always_inline)) static inline

/*
 * AVX2, F16C and POPCNT from cpuid, and the OS saving the AVX registers
 * (OSXSAVE and XCR0 bits 1-2).  Asked once per process: under a hypervisor
 * cpuid traps and costs tens of microseconds, more than casting a 4096-value
 * block.  pthread_once makes the one write safe from any thread; the answer
 * never changes afterwards.
 */
static bool has_avx2_f16c;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void detect_cpu(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool f16c = c & (1u << 29), osxsave = c & (1u << 27), popcnt = c & (1u << 23);
    if (!f16c || !osxsave || !popcnt)
        return;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    has_avx2_f16c = b & (1u << 5);   /* AVX2 */
}

bool cpu_has_avx2_f16c(void)
{
    pthread_once(&cpu_once, detect_cpu);
    return has_avx2_f16c;
}

/* Results in the low 16 bits of each 32-bit lane, with the inputs' float bits beside them. */
struct lanes16 {
    __m256i result, input_bits;
};

/* Per-lane counters kept in registers: each mask lane is -1 where counted, so subtracting adds one. */
struct tallies {
    __m256i overflowed, subnormal, flushed;
};

/*
 * Classifies 16-bit results of one format (exponent mask, infinity, the
 * canonical NaN, the largest finite value) and fixes NaN and overflow.
 */
INLINE __m256i finish16(struct lanes16 v, uint32_t exp_mask, uint32_t inf_code, uint32_t nan_code, uint32_t max_code,
                        ckpt_overflow policy, struct tallies *t)
{
    const __m256i mag_mask = _mm256_set1_epi32(0x7FFF), sign_mask = _mm256_set1_epi32(0x8000);
    __m256i in_abs = _mm256_and_si256(v.input_bits, _mm256_set1_epi32(0x7FFFFFFF));
    __m256i in_nan = _mm256_cmpgt_epi32(in_abs, _mm256_set1_epi32(0x7F800000));
    __m256i in_finite = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7F800000), in_abs);
    __m256i in_nonzero = _mm256_xor_si256(_mm256_cmpeq_epi32(in_abs, _mm256_setzero_si256()), _mm256_set1_epi32(-1));
    __m256i mag = _mm256_and_si256(v.result, mag_mask);
    /* the input's sign: rounding a NaN's payload can carry into the result's sign bit */
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(v.input_bits, 16), sign_mask);
    __m256i overflow = _mm256_and_si256(in_finite, _mm256_cmpeq_epi32(mag, _mm256_set1_epi32((int)inf_code)));
    __m256i zero_exp = _mm256_cmpeq_epi32(_mm256_and_si256(mag, _mm256_set1_epi32((int)exp_mask)), _mm256_setzero_si256());
    __m256i mag_zero = _mm256_cmpeq_epi32(mag, _mm256_setzero_si256());
    __m256i subnormal = _mm256_andnot_si256(mag_zero, zero_exp);
    __m256i flushed = _mm256_and_si256(mag_zero, _mm256_and_si256(in_nonzero, in_finite));
    t->overflowed = _mm256_sub_epi32(t->overflowed, overflow);
    t->subnormal = _mm256_sub_epi32(t->subnormal, subnormal);
    t->flushed = _mm256_sub_epi32(t->flushed, flushed);
    __m256i r = _mm256_blendv_epi8(v.result, _mm256_or_si256(sign, _mm256_set1_epi32((int)nan_code)), in_nan);
    if (policy == CKPT_OVERFLOW_SATURATE)
        r = _mm256_blendv_epi8(r, _mm256_or_si256(sign, _mm256_set1_epi32((int)max_code)), overflow);
    return r;
}

/* Packs eight 32-bit lanes holding 16-bit values into 8 uint16 and stores them. */
INLINE void store16(uint16_t *dst, __m256i r)
{
    __m256i packed = _mm256_packus_epi32(r, r);                        /* [a0..3 a0..3 | a4..7 a4..7] */
    packed = _mm256_permute4x64_epi64(packed, 0x08);                   /* [a0..3 a4..7 | ...] */
    _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(packed));
}

INLINE __m256i load_bf16_as_f32(const uint16_t *src)
{
    return _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)src)), 16);
}

/* f32 (as bits) -> f16, 8 at a time. */
INLINE void f32_bits_to_f16(__m256i bits, uint16_t *dst, ckpt_overflow policy, struct tallies *counts)
{
    __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(bits), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    struct lanes16 v = {_mm256_cvtepu16_epi32(h), bits};
    store16(dst, finish16(v, 0x7C00, 0x7C00, 0x7E00, 0x7BFF, policy, counts));
}

/* f32 (as bits) -> bf16 with round to nearest even, 8 at a time. */
INLINE void f32_bits_to_bf16(__m256i bits, uint16_t *dst, ckpt_overflow policy, struct tallies *counts)
{
    __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF)));
    struct lanes16 v = {_mm256_srli_epi32(rounded, 16), bits};
    store16(dst, finish16(v, 0x7F80, 0x7F80, 0x7FC0, 0x7F7F, policy, counts));
}

INLINE __m256i canonical_nan32(__m256i bits)
{
    __m256i abs = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));
    __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7F800000));
    __m256i canonical = _mm256_or_si256(_mm256_andnot_si256(_mm256_set1_epi32(0x7FFFFFFF), bits),
                                        _mm256_set1_epi32(0x7FC00000));
    return _mm256_blendv_epi8(bits, canonical, nan);
}

/*
 * e4m3fn to f32, 8 at a time.  A magnitude shifted to f16's place is an f16
 * of the same value divided by 2^8 (exponent bias 7 against 15), subnormals
 * included, so F16C decodes it exactly; 0x7F/0xFF, e4m3fn's NaNs, are fixed.
 */
INLINE __m256i load_e4m3_as_f32(const uint8_t *src)
{
    __m128i codes = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)src));
    __m128i mag = _mm_and_si128(codes, _mm_set1_epi16(0x7F));
    __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_slli_epi16(mag, 7)), _mm256_set1_ps(256.0f));
    __m256i mag32 = _mm256_cvtepu16_epi32(mag);
    __m256i nan = _mm256_cmpeq_epi32(mag32, _mm256_set1_epi32(0x7F));
    __m256i bits = _mm256_blendv_epi8(_mm256_castps_si256(v), _mm256_set1_epi32(0x7FC00000), nan);
    __m256i sign = _mm256_slli_epi32(_mm256_xor_si256(_mm256_cvtepu16_epi32(codes), mag32), 24);
    return _mm256_or_si256(bits, sign);
}

/*
 * e5m2 to f32, 8 at a time: an e5m2 code is the top byte of the f16 of the
 * same value (NaNs keep payloads here; every target makes them canonical).
 */
INLINE __m256i load_e5m2_as_f32(const uint8_t *src)
{
    __m128i h = _mm_slli_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)src)), 8);
    return _mm256_castps_si256(_mm256_cvtph_ps(h));
}

INLINE uint64_t lane_sum(__m256i v)
{
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, v);
    uint64_t sum = 0;
    for (int k = 0; k < 8; k++)
        sum += lanes[k];
    return sum;
}

/* Converts n (a multiple of 8, at most 2^33 so that no 32-bit lane counter wraps) values. */
TARGET static void run_block(ckpt_dtype from, const uint8_t *src, ckpt_dtype to, uint8_t *dst, size_t n,
                             ckpt_overflow policy, ckpt_cast_counts *counts)
{
    struct tallies t = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    for (size_t i = 0; i + 8 <= n; i += 8) {
        __m256i bits;
        if (from == CKPT_DTYPE_BF16)
            bits = load_bf16_as_f32((const uint16_t *)src + i);
        else if (from == CKPT_DTYPE_F16)
            bits = _mm256_castps_si256(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)src + i))));
        else if (from == CKPT_DTYPE_F8_E4M3)
            bits = load_e4m3_as_f32(src + i);
        else if (from == CKPT_DTYPE_F8_E5M2)
            bits = load_e5m2_as_f32(src + i);
        else
            bits = _mm256_loadu_si256((const __m256i *)((const float *)src + i));
        if (to == CKPT_DTYPE_F16)
            f32_bits_to_f16(bits, (uint16_t *)dst + i, policy, &t);
        else if (to == CKPT_DTYPE_BF16)
            f32_bits_to_bf16(bits, (uint16_t *)dst + i, policy, &t);
        else /* widening is exact; only NaNs become canonical, keeping their sign */
            _mm256_storeu_si256((__m256i *)((float *)dst + i), canonical_nan32(bits));
    }
    counts->overflowed += lane_sum(t.overflowed);
    counts->subnormal += lane_sum(t.subnormal);
    counts->flushed += lane_sum(t.flushed);
}

/*
 * bf16 -> f16, the conversion every 310P conversion is made of: 16 values a
 * step, classified in 16-bit lanes straight from the bf16 input (whose
 * exponent is float's), counted with hardware popcount.
 */
__attribute__((target("avx2,f16c,popcnt"))) static void bf16_to_f16(const uint16_t *src, uint16_t *dst, size_t n,
                                                                    ckpt_overflow policy, ckpt_cast_counts *counts)
{
    const __m256i mag_mask = _mm256_set1_epi16(0x7FFF), inf32 = _mm256_set1_epi16(0x7F80);
    const __m256i f16_inf = _mm256_set1_epi16(0x7C00), zero = _mm256_setzero_si256();
    uint64_t over = 0, sub = 0, flush = 0;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        __m256i in = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(in)), 16));
        __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(in, 1)), 16));
        __m256i r = _mm256_set_m128i(_mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                     _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i in_abs = _mm256_and_si256(in, mag_mask), mag = _mm256_and_si256(r, mag_mask);
        __m256i sign = _mm256_andnot_si256(mag_mask, in);
        __m256i in_nan = _mm256_cmpgt_epi16(in_abs, inf32);
        __m256i overflow = _mm256_andnot_si256(_mm256_cmpeq_epi16(in_abs, inf32), _mm256_cmpeq_epi16(mag, f16_inf));
        __m256i mag_zero = _mm256_cmpeq_epi16(mag, zero);
        __m256i subnormal = _mm256_andnot_si256(mag_zero, _mm256_cmpeq_epi16(_mm256_and_si256(mag, f16_inf), zero));
        __m256i flushed = _mm256_andnot_si256(_mm256_cmpeq_epi16(in_abs, zero), mag_zero);
        /* each 16-bit lane sets two mask bits */
        over += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(overflow)) / 2;
        sub += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(subnormal)) / 2;
        flush += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(flushed)) / 2;
        r = _mm256_blendv_epi8(r, _mm256_or_si256(sign, _mm256_set1_epi16(0x7E00)), in_nan);
        if (policy == CKPT_OVERFLOW_SATURATE)
            r = _mm256_blendv_epi8(r, _mm256_or_si256(sign, _mm256_set1_epi16(0x7BFF)), overflow);
        _mm256_storeu_si256((__m256i *)(dst + i), r);
    }
    counts->overflowed += over;
    counts->subnormal += sub;
    counts->flushed += flush;
}

static void run(ckpt_dtype from, const uint8_t *src, ckpt_dtype to, uint8_t *dst, size_t n, ckpt_overflow policy,
                ckpt_cast_counts *counts)
{
    if (from == CKPT_DTYPE_BF16 && to == CKPT_DTYPE_F16) {
        bf16_to_f16((const uint16_t *)src, (uint16_t *)dst, n, policy, counts);
        return;
    }
    const size_t block = (size_t)1 << 30;
    size_t in = ckpt_dtype_size(from), out = ckpt_dtype_size(to);
    for (size_t i = 0; i < n; i += block)
        run_block(from, src + i * in, to, dst + i * out, n - i < block ? n - i : block, policy, counts);
}

bool cast_fast(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t n, ckpt_overflow overflow,
               ckpt_cast_counts *counts)
{
    bool to16 = to == CKPT_DTYPE_F16 || to == CKPT_DTYPE_BF16;
    bool fp8 = from == CKPT_DTYPE_F8_E4M3 || from == CKPT_DTYPE_F8_E5M2;
    bool pair = (from == CKPT_DTYPE_BF16 && (to == CKPT_DTYPE_F16 || to == CKPT_DTYPE_F32)) ||
                (from == CKPT_DTYPE_F16 && (to == CKPT_DTYPE_BF16 || to == CKPT_DTYPE_F32)) ||
                (from == CKPT_DTYPE_F32 && to16) || (fp8 && (to16 || to == CKPT_DTYPE_F32));
    if (!pair || !cpu_has_avx2_f16c())
        return false;
    size_t body = n & ~(size_t)15;   /* whole steps of both loops */
    run(from, src, to, dst, body, overflow, counts);
    size_t in = ckpt_dtype_size(from), out = ckpt_dtype_size(to);
    if (body < n)   /* the reference for the tail; its error status is the caller's to raise */
        cast_portable(from, (const uint8_t *)src + body * in, to, (uint8_t *)dst + body * out, n - body,
                      overflow == CKPT_OVERFLOW_ERROR ? CKPT_OVERFLOW_INF : overflow, counts, NULL);
    return true;
}

#else

bool cpu_has_avx2_f16c(void)
{
    return false;
}

bool cast_fast(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t n, ckpt_overflow overflow,
               ckpt_cast_counts *counts)
{
    (void)from, (void)src, (void)to, (void)dst, (void)n, (void)overflow, (void)counts;
    return false;
}

#endif
