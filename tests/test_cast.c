/*
 * test_cast.c: ckpt_cast against golden values from torch
 * (testdata/golden/make_golden.py) and hand-worked cases; the vectorised
 * path against the portable one.  fp8 decoding and block dequantization are
 * in test_fp8.c.
 */
#include "helpers.h"

#include "libckpt/kernels/kernels.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*cast_fn)(ckpt_dtype, const void *, ckpt_dtype, void *, size_t, ckpt_overflow, ckpt_cast_counts *,
                       ckpt_error *);

static uint8_t *golden(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s", name);
    char *path = test_testdata(rel);
    uint8_t *data = test_read_file(path, len);
    free(path);
    return data;
}

/* The vectorised path where it exists, else the reference: what ckpt_cast runs. */
static int cast_fast_or_ref(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t n, ckpt_overflow o,
                            ckpt_cast_counts *c, ckpt_error *err)
{
    return ckpt_cast(from, src, to, dst, n, o, c, err);
}

static void expect_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n, size_t es,
                         const uint8_t *inputs, size_t in_es)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(got + i * es, want + i * es, es) == 0)
            continue;
        uint64_t g = 0, w = 0, x = 0;
        memcpy(&g, got + i * es, es);
        memcpy(&w, want + i * es, es);
        memcpy(&x, inputs + i * in_es, in_es);
        ck_abort_msg("%s: element %zu (input 0x%llx): got 0x%llx, golden 0x%llx", what, i, (unsigned long long)x,
                     (unsigned long long)g, (unsigned long long)w);
    }
}

/* Converts `inputs` with both paths and compares each with the golden file. */
static void check_golden(const char *what, ckpt_dtype from, const uint8_t *inputs, size_t n, ckpt_dtype to,
                         const char *golden_name)
{
    size_t len, es = ckpt_dtype_size(to);
    uint8_t *want = golden(golden_name, &len);
    ck_assert_uint_eq(len, n * es);
    uint8_t *got = malloc(n * es);
    cast_fn paths[] = {cast_portable, cast_fast_or_ref};
    for (int p = 0; p < 2; p++) {
        ckpt_error err;
        memset(got, 0xAA, n * es);
        ck_assert_int_eq(paths[p](from, inputs, to, got, n, CKPT_OVERFLOW_INF, NULL, &err), CKPT_OK);
        expect_bytes(what, got, want, n, es, inputs, ckpt_dtype_size(from));
    }
    free(got);
    free(want);
}

static uint16_t *all_16bit_patterns(void)
{
    uint16_t *p = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++)
        p[i] = (uint16_t)i;
    return p;
}

START_TEST(every_bf16_and_f16_pattern)
{
    uint16_t *all = all_16bit_patterns();
    check_golden("bf16->f16", CKPT_DTYPE_BF16, (uint8_t *)all, 65536, CKPT_DTYPE_F16, "bf16_to_f16.bin");
    check_golden("f16->bf16", CKPT_DTYPE_F16, (uint8_t *)all, 65536, CKPT_DTYPE_BF16, "f16_to_bf16.bin");
    check_golden("bf16->e4m3", CKPT_DTYPE_BF16, (uint8_t *)all, 65536, CKPT_DTYPE_F8_E4M3, "bf16_to_e4m3.bin");
    check_golden("bf16->e5m2", CKPT_DTYPE_BF16, (uint8_t *)all, 65536, CKPT_DTYPE_F8_E5M2, "bf16_to_e5m2.bin");
    check_golden("f16->e4m3", CKPT_DTYPE_F16, (uint8_t *)all, 65536, CKPT_DTYPE_F8_E4M3, "f16_to_e4m3.bin");
    check_golden("f16->e5m2", CKPT_DTYPE_F16, (uint8_t *)all, 65536, CKPT_DTYPE_F8_E5M2, "f16_to_e5m2.bin");
    free(all);
}
END_TEST

/* The f32 boundary set, built exactly as make_golden.py builds it. */
static uint32_t *boundary_f32(size_t *n)
{
    static const uint32_t mants[] = {0, 1, 2, 3, 0x7FFFFF, 0x7FFFFE, 0x400000, 0x3FFFFF, 0x400001, 0x1000, 0x0FFF,
                                     0x1001, 0x2000, 0x3000, 0x1FFF, 0x5000, 0x7FE000, 0x7FF000, 0x7FEFFF, 0x7FF001,
                                     0x8000, 0x7FFF, 0x8001, 0x10000, 0x18000, 0x17FFF, 0x18001, 0x7F8000, 0x7F7FFF,
                                     0x7F8001, 0x100000, 0x080000, 0x0C0000, 0x0BFFFF, 0x0C0001, 0x040000, 0x03FFFF,
                                     0x040001, 0x200000, 0x1FFFFF};
    size_t m = sizeof mants / sizeof mants[0];
    uint32_t *p = malloc(2 * 256 * m * 4);
    *n = 0;
    for (uint32_t s = 0; s < 2; s++)
        for (uint32_t e = 0; e < 256; e++)
            for (size_t k = 0; k < m; k++)
                p[(*n)++] = s << 31 | e << 23 | mants[k];
    return p;
}

START_TEST(f32_boundaries)
{
    size_t n;
    uint32_t *in = boundary_f32(&n);
    check_golden("f32->f16", CKPT_DTYPE_F32, (uint8_t *)in, n, CKPT_DTYPE_F16, "f32b_to_f16.bin");
    check_golden("f32->bf16", CKPT_DTYPE_F32, (uint8_t *)in, n, CKPT_DTYPE_BF16, "f32b_to_bf16.bin");
    check_golden("f32->e4m3", CKPT_DTYPE_F32, (uint8_t *)in, n, CKPT_DTYPE_F8_E4M3, "f32b_to_e4m3.bin");
    check_golden("f32->e5m2", CKPT_DTYPE_F32, (uint8_t *)in, n, CKPT_DTYPE_F8_E5M2, "f32b_to_e5m2.bin");
    free(in);
}
END_TEST

START_TEST(f64_boundaries_round_twice_like_torch)
{
    size_t len;
    uint8_t *in = golden("f64b_inputs.bin", &len);
    size_t n = len / 8;
    check_golden("f64->f32", CKPT_DTYPE_F64, in, n, CKPT_DTYPE_F32, "f64b_to_f32.bin");
    check_golden("f64->f16", CKPT_DTYPE_F64, in, n, CKPT_DTYPE_F16, "f64b_to_f16.bin");
    check_golden("f64->bf16", CKPT_DTYPE_F64, in, n, CKPT_DTYPE_BF16, "f64b_to_bf16.bin");
    check_golden("f64->e4m3", CKPT_DTYPE_F64, in, n, CKPT_DTYPE_F8_E4M3, "f64b_to_e4m3.bin");
    check_golden("f64->e5m2", CKPT_DTYPE_F64, in, n, CKPT_DTYPE_F8_E5M2, "f64b_to_e5m2.bin");
    free(in);
}
END_TEST

/* ---- millions of random patterns, compared by checksum ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void check_random(json_t *g, const char *key, ckpt_dtype from, const void *in, size_t n, ckpt_dtype to)
{
    size_t es = ckpt_dtype_size(to);
    uint8_t *out = malloc(n * es);
    cast_fn paths[] = {cast_portable, cast_fast_or_ref};
    for (int p = 0; p < 2; p++) {
        ck_assert_int_eq(paths[p](from, in, to, out, n, CKPT_OVERFLOW_INF, NULL, NULL), CKPT_OK);
        char hex[17];
        test_fnv1a_hex(out, n * es, hex);
        ck_assert_msg(strcmp(hex, json_string_value(json_object_get(g, key))) == 0, "%s (path %d): %s", key, p, hex);
    }
    free(out);
}

/* Exponent field in [96, 151] with random sign and mantissa: make_golden.py's in_range_f32. */
static uint32_t in_range_f32(uint64_t r)
{
    return (uint32_t)(r & 0x807FFFFFu) | (uint32_t)(96 + (r >> 32) % 56) << 23;
}

START_TEST(millions_of_random_patterns)
{
    char *path = test_testdata("golden/golden.json");
    json_t *g = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(g);
    size_t n32 = (size_t)json_integer_value(json_object_get(g, "random_f32_count"));
    size_t n64 = (size_t)json_integer_value(json_object_get(g, "random_f64_count"));
    size_t nin = (size_t)json_integer_value(json_object_get(g, "in_range_f32_count"));
    ck_assert(n32 >= n64 && n32 + nin >= 4000000);
    uint64_t *r = malloc((n32 + nin) * 8), state = 0;
    uint32_t *r32 = malloc(n32 * 4), *in = malloc(nin * 4);
    for (size_t i = 0; i < n32 + nin; i++)
        r[i] = splitmix64(&state);
    for (size_t i = 0; i < n32; i++)
        r32[i] = (uint32_t)r[i];
    for (size_t i = 0; i < nin; i++)
        in[i] = in_range_f32(r[n32 + i]);
    check_random(g, "random_f32_to_f16_fnv", CKPT_DTYPE_F32, r32, n32, CKPT_DTYPE_F16);
    check_random(g, "random_f32_to_bf16_fnv", CKPT_DTYPE_F32, r32, n32, CKPT_DTYPE_BF16);
    check_random(g, "random_f32_to_e4m3_fnv", CKPT_DTYPE_F32, r32, n32, CKPT_DTYPE_F8_E4M3);
    check_random(g, "random_f32_to_e5m2_fnv", CKPT_DTYPE_F32, r32, n32, CKPT_DTYPE_F8_E5M2);
    check_random(g, "in_range_f32_to_f16_fnv", CKPT_DTYPE_F32, in, nin, CKPT_DTYPE_F16);
    check_random(g, "in_range_f32_to_bf16_fnv", CKPT_DTYPE_F32, in, nin, CKPT_DTYPE_BF16);
    check_random(g, "in_range_f32_to_e4m3_fnv", CKPT_DTYPE_F32, in, nin, CKPT_DTYPE_F8_E4M3);
    check_random(g, "in_range_f32_to_e5m2_fnv", CKPT_DTYPE_F32, in, nin, CKPT_DTYPE_F8_E5M2);
    check_random(g, "random_f64_to_f32_fnv", CKPT_DTYPE_F64, r, n64, CKPT_DTYPE_F32);
    check_random(g, "random_f64_to_f16_fnv", CKPT_DTYPE_F64, r, n64, CKPT_DTYPE_F16);
    check_random(g, "random_f64_to_bf16_fnv", CKPT_DTYPE_F64, r, n64, CKPT_DTYPE_BF16);
    json_decref(g);
    free(path);
    free(r);
    free(r32);
    free(in);
}
END_TEST

/* ---- the vectorised path against the reference, with every policy ---- */

START_TEST(fast_path_matches_reference)
{
    if (!cpu_has_avx2_f16c())
        return;   /* nothing to compare on this CPU: ckpt_cast runs the reference */
    static const ckpt_dtype pairs[][2] = {
        {CKPT_DTYPE_BF16, CKPT_DTYPE_F16}, {CKPT_DTYPE_BF16, CKPT_DTYPE_F32}, {CKPT_DTYPE_F16, CKPT_DTYPE_BF16},
        {CKPT_DTYPE_F16, CKPT_DTYPE_F32},  {CKPT_DTYPE_F32, CKPT_DTYPE_F16},  {CKPT_DTYPE_F32, CKPT_DTYPE_BF16},
        {CKPT_DTYPE_F8_E4M3, CKPT_DTYPE_F32}, {CKPT_DTYPE_F8_E4M3, CKPT_DTYPE_F16}, {CKPT_DTYPE_F8_E4M3, CKPT_DTYPE_BF16},
        {CKPT_DTYPE_F8_E5M2, CKPT_DTYPE_F32}, {CKPT_DTYPE_F8_E5M2, CKPT_DTYPE_F16}, {CKPT_DTYPE_F8_E5M2, CKPT_DTYPE_BF16},
    };
    size_t n = 1 << 18;
    uint32_t *in = malloc(n * 4);
    uint64_t state = 7;
    for (size_t i = 0; i < n; i++) {   /* any bits, and bits near the narrow types' ranges */
        uint64_t r = splitmix64(&state);
        in[i] = i % 2 ? (uint32_t)r : in_range_f32(r);
    }
    uint8_t *a = malloc(n * 4), *b = malloc(n * 4);
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        for (int policy = CKPT_OVERFLOW_SATURATE; policy <= CKPT_OVERFLOW_ERROR; policy++) {
            /* an odd start and length: unaligned vectors and a tail for the reference */
            size_t len = n - 21, es = ckpt_dtype_size(pairs[p][1]);
            const uint8_t *src = (const uint8_t *)in + 3 * ckpt_dtype_size(pairs[p][0]);
            ckpt_cast_counts ca = {0, 0, 0}, cb = {0, 0, 0};
            memset(a, 0x11, n * 4);
            memset(b, 0x22, n * 4);
            int want = cast_portable(pairs[p][0], src, pairs[p][1], a, len, policy, &ca, NULL);
            ck_assert(cast_fast(pairs[p][0], src, pairs[p][1], b, len, policy, &cb));
            ck_assert_msg(memcmp(a, b, len * es) == 0, "pair %zu policy %d: bytes differ", p, policy);
            ck_assert_uint_eq(ca.overflowed, cb.overflowed);
            ck_assert_uint_eq(ca.subnormal, cb.subnormal);
            ck_assert_uint_eq(ca.flushed, cb.flushed);
            /* ckpt_cast raises the same status from the fast path's counts */
            ck_assert_int_eq(ckpt_cast(pairs[p][0], src, pairs[p][1], b, len, policy, NULL, NULL), want);
            ck_assert_int_eq(want, policy == CKPT_OVERFLOW_ERROR && ca.overflowed ? CKPT_ERR_LIMIT : CKPT_OK);
        }
    }
    free(in);
    free(a);
    free(b);
}
END_TEST

/* ---- policies and counts, worked by hand ---- */

static uint16_t one16(ckpt_dtype from, uint32_t bits, ckpt_dtype to, ckpt_overflow policy, ckpt_cast_counts *c)
{
    uint16_t out = 0;
    uint8_t in[4];
    memcpy(in, &bits, 4);
    ck_assert_int_eq(ckpt_cast(from, in, to, &out, 1, policy, c, NULL), CKPT_OK);
    return out;
}

START_TEST(overflow_policies_and_counts)
{
    ckpt_cast_counts c = {0, 0, 0};
    /* bf16 0x7F7F (about 3.39e38) is far past f16's 65504 */
    ck_assert_uint_eq(one16(CKPT_DTYPE_BF16, 0x7F7F, CKPT_DTYPE_F16, CKPT_OVERFLOW_INF, &c), 0x7C00);
    ck_assert_uint_eq(one16(CKPT_DTYPE_BF16, 0xFF7F, CKPT_DTYPE_F16, CKPT_OVERFLOW_SATURATE, &c), 0xFBFF);
    ck_assert_uint_eq(c.overflowed, 2);
    uint16_t big = 0x7F7F, out;
    ckpt_error err;
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_BF16, &big, CKPT_DTYPE_F16, &out, 1, CKPT_OVERFLOW_ERROR, NULL, &err),
                     CKPT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.message, "overflow F16"));
    /* 65504 is f16's largest: no overflow; 65520 (f32 0x477FF000) rounds past it */
    c = (ckpt_cast_counts){0, 0, 0};
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0x477FE000, CKPT_DTYPE_F16, CKPT_OVERFLOW_SATURATE, &c), 0x7BFF);
    ck_assert_uint_eq(c.overflowed, 0);
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0x477FF000, CKPT_DTYPE_F16, CKPT_OVERFLOW_SATURATE, &c), 0x7BFF);
    ck_assert_uint_eq(c.overflowed, 1);
    /* infinity is not an overflow and stays infinite under saturate */
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0xFF800000, CKPT_DTYPE_F16, CKPT_OVERFLOW_SATURATE, &c), 0xFC00);
    ck_assert_uint_eq(c.overflowed, 1);
    /* 2^-20 is an f16 subnormal (0x0010); 2^-26 rounds to zero */
    c = (ckpt_cast_counts){0, 0, 0};
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0x35800000, CKPT_DTYPE_F16, CKPT_OVERFLOW_INF, &c), 0x0010);
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0xB2800000, CKPT_DTYPE_F16, CKPT_OVERFLOW_INF, &c), 0x8000);
    ck_assert_uint_eq(c.subnormal, 1);
    ck_assert_uint_eq(c.flushed, 1);
    /* NaN keeps its sign as the canonical quiet NaN */
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0xFF812345, CKPT_DTYPE_BF16, CKPT_OVERFLOW_INF, NULL), 0xFFC0);
    ck_assert_uint_eq(one16(CKPT_DTYPE_F32, 0xFF812345, CKPT_DTYPE_F16, CKPT_OVERFLOW_INF, NULL), 0xFE00);
    /* e4m3fn: 470 rounds past 448, torch gives NaN; saturate gives 448 (0x7E) */
    float f = 470.0f;
    uint8_t e4;
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F32, &f, CKPT_DTYPE_F8_E4M3, &e4, 1, CKPT_OVERFLOW_INF, NULL, NULL), 0);
    ck_assert_uint_eq(e4, 0x7F);
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F32, &f, CKPT_DTYPE_F8_E4M3, &e4, 1, CKPT_OVERFLOW_SATURATE, NULL, NULL), 0);
    ck_assert_uint_eq(e4, 0x7E);
    /* unsupported pairs say so */
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_I32, &f, CKPT_DTYPE_F16, &out, 1, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_UNSUPPORTED);
}
END_TEST

static uint8_t one8(ckpt_dtype from, const void *in, ckpt_dtype to, ckpt_overflow policy, ckpt_cast_counts *c)
{
    uint8_t out = 0xAA;
    ck_assert_int_eq(ckpt_cast(from, in, to, &out, 1, policy, c, NULL), CKPT_OK);
    return out;
}

START_TEST(fp8_targets_by_hand)
{
    ckpt_cast_counts c = {0, 0, 0};
    float nan = -NAN, inf = INFINITY, tie = 61440.0f, below = 61439.0f, half_min = 0x1p-10f, sub = 0x1.8p-10f;
    /* e5m2: NaN is 0x7F with its sign (torch's fp8e5m2_from_fp32_value); infinity stays infinity */
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &nan, CKPT_DTYPE_F8_E5M2, CKPT_OVERFLOW_SATURATE, &c), 0xFF);
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &inf, CKPT_DTYPE_F8_E5M2, CKPT_OVERFLOW_SATURATE, &c), 0x7C);
    ck_assert_uint_eq(c.overflowed, 0);
    /* 61440 is halfway between 57344 (0x7B, odd) and 65536: ties to even overflow it */
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &below, CKPT_DTYPE_F8_E5M2, CKPT_OVERFLOW_INF, &c), 0x7B);
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &tie, CKPT_DTYPE_F8_E5M2, CKPT_OVERFLOW_INF, &c), 0x7C);
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &tie, CKPT_DTYPE_F8_E5M2, CKPT_OVERFLOW_SATURATE, &c), 0x7B);
    ck_assert_uint_eq(c.overflowed, 2);
    /* e4m3fn has no infinity: an infinite input is NaN under every policy, and not an overflow */
    inf = -INFINITY;
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &inf, CKPT_DTYPE_F8_E4M3, CKPT_OVERFLOW_SATURATE, &c), 0xFF);
    ck_assert_uint_eq(c.overflowed, 2);
    /* 2^-10 is half e4m3's smallest subnormal 2^-9: ties to even flush it; 1.5 * 2^-10 rounds up to 0x01 */
    c = (ckpt_cast_counts){0, 0, 0};
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &half_min, CKPT_DTYPE_F8_E4M3, CKPT_OVERFLOW_INF, &c), 0x00);
    ck_assert_uint_eq(one8(CKPT_DTYPE_F32, &sub, CKPT_DTYPE_F8_E4M3, CKPT_OVERFLOW_INF, &c), 0x01);
    ck_assert_uint_eq(c.flushed, 1);
    ck_assert_uint_eq(c.subnormal, 1);
    /* fp8 to fp8 goes through float: e4m3 448 (0x7E) = 1.75 * 2^8 is e5m2 0x5F; 2^-9 (0x01) is e5m2 0x18 */
    uint8_t e4[2] = {0x7E, 0x81}, e5[2];
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F8_E4M3, e4, CKPT_DTYPE_F8_E5M2, e5, 2, CKPT_OVERFLOW_ERROR, NULL, NULL), 0);
    ck_assert_uint_eq(e5[0], 0x5F);
    ck_assert_uint_eq(e5[1], 0x98);
}
END_TEST

START_TEST(f64_edges_and_streaming_counts)
{
    /* 1e-300 is zero once rounded to float: it was flushed, whatever the target */
    double tiny[2] = {1e-300, -1e-300}, huge = 1e300;
    uint16_t h[2];
    ckpt_cast_counts c = {0, 0, 0};
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F64, tiny, CKPT_DTYPE_F16, h, 2, CKPT_OVERFLOW_INF, &c, NULL), 0);
    ck_assert_uint_eq(h[0], 0x0000);
    ck_assert_uint_eq(h[1], 0x8000);
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F64, tiny, CKPT_DTYPE_BF16, h, 2, CKPT_OVERFLOW_INF, &c, NULL), 0);
    ck_assert_uint_eq(c.flushed, 4);   /* counts accumulate across calls */
    /* 1e300 is past float: overflow to f32 infinity, or its largest value */
    uint32_t f;
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F64, &huge, CKPT_DTYPE_F32, &f, 1, CKPT_OVERFLOW_INF, &c, NULL), 0);
    ck_assert_uint_eq(f, 0x7F800000);
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F64, &huge, CKPT_DTYPE_F32, &f, 1, CKPT_OVERFLOW_SATURATE, &c, NULL), 0);
    ck_assert_uint_eq(f, 0x7F7FFFFF);
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F64, &huge, CKPT_DTYPE_F16, h, 1, CKPT_OVERFLOW_SATURATE, &c, NULL), 0);
    ck_assert_uint_eq(h[0], 0x7BFF);
    ck_assert_uint_eq(c.overflowed, 3);
    /* widening to f64: NaN canonical with its sign, like every other target */
    uint32_t snan = 0xFF800001;
    uint64_t d;
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F32, &snan, CKPT_DTYPE_F64, &d, 1, CKPT_OVERFLOW_INF, NULL, NULL), 0);
    ck_assert_uint_eq(d, 0xFFF8000000000000ull);
    /* the same type is a copy, even of a type with no cast; a count past the address space is refused */
    int32_t i[2] = {-5, 7}, o[2];
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_I32, i, CKPT_DTYPE_I32, o, 2, CKPT_OVERFLOW_INF, NULL, NULL), 0);
    ck_assert_mem_eq(i, o, sizeof i);
    ckpt_error err;
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F32, &f, CKPT_DTYPE_F16, h, SIZE_MAX / 2, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_ARG);
}
END_TEST

static Suite *cast_suite(void)
{
    Suite *s = suite_create("cast");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_bf16_and_f16_pattern);
    tcase_add_test(tc, f32_boundaries);
    tcase_add_test(tc, f64_boundaries_round_twice_like_torch);
    tcase_add_test(tc, millions_of_random_patterns);
    tcase_add_test(tc, fast_path_matches_reference);
    tcase_add_test(tc, overflow_policies_and_counts);
    tcase_add_test(tc, fp8_targets_by_hand);
    tcase_add_test(tc, f64_edges_and_streaming_counts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(cast_suite());
}
