/*
 * test_fp8.c: fp8 codes decoded, and block-scaled fp8 weights dequantized,
 * against goldens from testdata/golden/make_golden.py (the OCP FP8 tables,
 * and torch's `(w.float() * scale_of_its_block).to(dtype)` on a 130 x 260
 * e4m3 weight in 128 x 128 blocks), plus other block sizes worked from the
 * decoded codes.
 */
#include "helpers.h"

#include "libckpt/kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 130, COLS = 260, BLOCK = 128, SROWS = 2, SCOLS = 3 };

static uint8_t *golden(const char *name, size_t want_len)
{
    char rel[256];
    snprintf(rel, sizeof rel, "golden/%s", name);
    char *path = test_testdata(rel);
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    ck_assert_msg(len == want_len, "%s: %zu bytes, expected %zu", name, len, want_len);
    free(path);
    return data;
}

/* ---- the 256 codes ---- */

START_TEST(every_fp8_code)
{
    static const struct {
        ckpt_dtype from, to;
        const char *file;
    } cases[] = {
        {CKPT_DTYPE_F8_E4M3, CKPT_DTYPE_F32, "e4m3_to_f32.bin"},  {CKPT_DTYPE_F8_E4M3, CKPT_DTYPE_BF16, "e4m3_to_bf16.bin"},
        {CKPT_DTYPE_F8_E4M3, CKPT_DTYPE_F16, "e4m3_to_f16.bin"},  {CKPT_DTYPE_F8_E5M2, CKPT_DTYPE_F32, "e5m2_to_f32.bin"},
        {CKPT_DTYPE_F8_E5M2, CKPT_DTYPE_BF16, "e5m2_to_bf16.bin"}, {CKPT_DTYPE_F8_E5M2, CKPT_DTYPE_F16, "e5m2_to_f16.bin"},
    };
    /* the reference, and ckpt_cast: the vectorised path where this CPU has one */
    int (*paths[2])(ckpt_dtype, const void *, ckpt_dtype, void *, size_t, ckpt_overflow, ckpt_cast_counts *,
                    ckpt_error *) = {cast_portable, ckpt_cast};
    uint8_t codes[256], got[1024];
    for (int i = 0; i < 256; i++)
        codes[i] = (uint8_t)i;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t es = ckpt_dtype_size(cases[k].to);
        uint8_t *want = golden(cases[k].file, 256 * es);
        for (int p = 0; p < 2; p++) {
            ckpt_cast_counts c = {0, 0, 0};
            memset(got, 0xAA, sizeof got);
            ck_assert_int_eq(paths[p](cases[k].from, codes, cases[k].to, got, 256, CKPT_OVERFLOW_ERROR, &c, NULL), 0);
            for (int i = 0; i < 256; i++)
                ck_assert_msg(memcmp(got + i * es, want + i * es, es) == 0, "%s (path %d): code 0x%02x",
                              cases[k].file, p, i);
            /* every fp8 value is exact in f32, bf16 and f16: widening costs nothing */
            ck_assert_uint_eq(c.overflowed + c.flushed, 0);
        }
        free(want);
    }
}
END_TEST

/* ---- block dequantization against torch ---- */

struct fixture {
    uint8_t *w;
    float *scales;
};

static struct fixture load_fixture(void)
{
    struct fixture f = {golden("fp8_weight_e4m3.bin", ROWS * COLS),
                        (float *)golden("fp8_scales.bin", SROWS * SCOLS * 4)};
    return f;
}

static void free_fixture(struct fixture f)
{
    free(f.w);
    free(f.scales);
}

static int dequant(struct fixture f, uint64_t row0, uint64_t rows, ckpt_dtype to, void *dst, ckpt_overflow policy,
                   ckpt_cast_counts *c, ckpt_error *err)
{
    return ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w + row0 * COLS, rows, COLS, row0, f.scales, SROWS, SCOLS, BLOCK,
                            BLOCK, to, dst, policy, c, err);
}

START_TEST(dequant_matches_torch)
{
    static const struct {
        ckpt_dtype to;
        const char *file;
    } cases[] = {{CKPT_DTYPE_F32, "fp8_dequant_to_f32.bin"},
                 {CKPT_DTYPE_BF16, "fp8_dequant_to_bf16.bin"},
                 {CKPT_DTYPE_F16, "fp8_dequant_to_f16.bin"}};
    struct fixture f = load_fixture();
    uint8_t *got = malloc(ROWS * COLS * 4);
    for (size_t k = 0; k < 3; k++) {
        size_t es = ckpt_dtype_size(cases[k].to);
        uint8_t *want = golden(cases[k].file, ROWS * COLS * es);
        ck_assert_int_eq(dequant(f, 0, ROWS, cases[k].to, got, CKPT_OVERFLOW_INF, NULL, NULL), CKPT_OK);
        for (size_t i = 0; i < ROWS * COLS; i++)
            ck_assert_msg(memcmp(got + i * es, want + i * es, es) == 0, "%s: element (%zu, %zu)", cases[k].file,
                          i / COLS, i % COLS);
        free(want);
    }
    free(got);
    free_fixture(f);
}
END_TEST

/*
 * The f16 result under each policy, and its counts, derived from torch's own
 * f32 and f16 results: overflowed where a finite product became infinite,
 * flushed where a non-zero one became zero, subnormal where the result is.
 */
START_TEST(dequant_policies_and_counts)
{
    struct fixture f = load_fixture();
    float *prod = (float *)golden("fp8_dequant_to_f32.bin", ROWS * COLS * 4);
    uint16_t *torch16 = (uint16_t *)golden("fp8_dequant_to_f16.bin", ROWS * COLS * 2);
    ckpt_cast_counts want = {0, 0, 0};
    uint16_t *saturated = malloc(ROWS * COLS * 2), *got = malloc(ROWS * COLS * 2);
    for (size_t i = 0; i < ROWS * COLS; i++) {
        uint16_t mag = torch16[i] & 0x7FFF;
        bool overflow = isfinite(prod[i]) && mag == 0x7C00;
        want.overflowed += overflow;
        want.flushed += prod[i] != 0 && !isnan(prod[i]) && mag == 0;
        want.subnormal += mag != 0 && mag < 0x0400;
        saturated[i] = overflow ? (uint16_t)((torch16[i] & 0x8000) | 0x7BFF) : torch16[i];
    }
    /* the fixture's scales were chosen so that each count is exercised */
    ck_assert(want.overflowed > 0 && want.flushed > 0 && want.subnormal > 0);
    ckpt_cast_counts c = {0, 0, 0};
    ck_assert_int_eq(dequant(f, 0, ROWS, CKPT_DTYPE_F16, got, CKPT_OVERFLOW_SATURATE, &c, NULL), CKPT_OK);
    ck_assert_mem_eq(got, saturated, ROWS * COLS * 2);
    ck_assert_uint_eq(c.overflowed, want.overflowed);
    ck_assert_uint_eq(c.flushed, want.flushed);
    ck_assert_uint_eq(c.subnormal, want.subnormal);
    ckpt_error err;
    ck_assert_int_eq(dequant(f, 0, ROWS, CKPT_DTYPE_F16, got, CKPT_OVERFLOW_ERROR, NULL, &err), CKPT_ERR_LIMIT);
    free(prod);
    free(torch16);
    free(saturated);
    free(got);
    free_fixture(f);
}
END_TEST

START_TEST(dequant_streamed_by_row_ranges)
{
    /* uneven ranges, one crossing the block boundary at row 128 */
    static const uint64_t cuts[] = {0, 1, 50, 127, 129, ROWS};
    struct fixture f = load_fixture();
    uint16_t *whole = malloc(ROWS * COLS * 2), *parts = malloc(ROWS * COLS * 2);
    ck_assert_int_eq(dequant(f, 0, ROWS, CKPT_DTYPE_BF16, whole, CKPT_OVERFLOW_SATURATE, NULL, NULL), CKPT_OK);
    ckpt_cast_counts c = {0, 0, 0}, all = {0, 0, 0};
    ck_assert_int_eq(dequant(f, 0, ROWS, CKPT_DTYPE_F16, parts, CKPT_OVERFLOW_SATURATE, &all, NULL), CKPT_OK);
    memset(parts, 0xEE, ROWS * COLS * 2);
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        ck_assert_int_eq(dequant(f, cuts[k], cuts[k + 1] - cuts[k], CKPT_DTYPE_BF16, parts + cuts[k] * COLS,
                                 CKPT_OVERFLOW_SATURATE, NULL, NULL),
                         CKPT_OK);
    ck_assert_mem_eq(parts, whole, ROWS * COLS * 2);
    /* counts accumulate across the ranges to the whole's */
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        ck_assert_int_eq(dequant(f, cuts[k], cuts[k + 1] - cuts[k], CKPT_DTYPE_F16, parts + cuts[k] * COLS,
                                 CKPT_OVERFLOW_SATURATE, &c, NULL),
                         CKPT_OK);
    ck_assert_uint_eq(c.overflowed, all.overflowed);
    ck_assert_uint_eq(c.flushed, all.flushed);
    ck_assert_uint_eq(c.subnormal, all.subnormal);
    free(whole);
    free(parts);
    free_fixture(f);
}
END_TEST

/* Other block shapes and e5m2, against float products of the decoded codes (e*_to_f32.bin). */
static void check_blocks(ckpt_dtype wt, const char *table_file, uint64_t br, uint64_t bc)
{
    struct fixture f = load_fixture();
    float *table = (float *)golden(table_file, 1024);
    uint64_t sr = (ROWS + br - 1) / br, sc = (COLS + bc - 1) / bc;
    float *scales = malloc(sr * sc * 4), *want = malloc(ROWS * COLS * 4), *got = malloc(ROWS * COLS * 4);
    for (uint64_t i = 0; i < sr * sc; i++)
        scales[i] = ldexpf(1.0f + (float)(i % 7) / 8, (int)(i % 11) - 5);
    for (uint64_t r = 0; r < ROWS; r++)
        for (uint64_t c = 0; c < COLS; c++)
            want[r * COLS + c] = table[f.w[r * COLS + c]] * scales[(r / br) * sc + c / bc];
    ck_assert_int_eq(ckpt_fp8_dequant(wt, f.w, ROWS, COLS, 0, scales, sr, sc, br, bc, CKPT_DTYPE_F32, got,
                                      CKPT_OVERFLOW_INF, NULL, NULL),
                     CKPT_OK);
    for (size_t i = 0; i < ROWS * COLS; i++)   /* NaN products compare as bits: canonical, same sign */
        ck_assert_msg(memcmp(&got[i], &want[i], 4) == 0 || (isnan(got[i]) && isnan(want[i]) &&
                                                            signbit(got[i]) == signbit(want[i])),
                      "blocks %llux%llu: element %zu", (unsigned long long)br, (unsigned long long)bc, i);
    free(table);
    free(scales);
    free(want);
    free(got);
    free_fixture(f);
}

START_TEST(other_block_sizes)
{
    check_blocks(CKPT_DTYPE_F8_E4M3, "e4m3_to_f32.bin", 32, 48);
    check_blocks(CKPT_DTYPE_F8_E4M3, "e4m3_to_f32.bin", 1, COLS);   /* per-row scales */
    check_blocks(CKPT_DTYPE_F8_E5M2, "e5m2_to_f32.bin", 7, 5000);   /* one block wider than the weight */
    check_blocks(CKPT_DTYPE_F8_E5M2, "e5m2_to_f32.bin", 1, 1);      /* a scale per element */
}
END_TEST

START_TEST(refusals)
{
    struct fixture f = load_fixture();
    float out[4];
    ckpt_error err;
    /* scales that miss the last row block or column block */
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w, ROWS, COLS, 0, f.scales, 1, SCOLS, BLOCK, BLOCK,
                                      CKPT_DTYPE_F32, out, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "do not cover"));
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w, 1, COLS, 0, f.scales, SROWS, 2, BLOCK, BLOCK,
                                      CKPT_DTYPE_F32, out, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_FORMAT);
    /* a row range starting past the scales */
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w, 1, COLS, 2 * BLOCK, f.scales, SROWS, SCOLS, BLOCK,
                                      BLOCK, CKPT_DTYPE_F32, out, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_FORMAT);
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w, 1, 1, UINT64_MAX, f.scales, SROWS, SCOLS, BLOCK, BLOCK,
                                      CKPT_DTYPE_F32, out, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_FORMAT);
    /* not fp8, no block, a size past the address space */
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_I8, f.w, 1, 1, 0, f.scales, 1, 1, 1, 1, CKPT_DTYPE_F32, out,
                                      CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_ARG);
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w, 1, 1, 0, f.scales, 1, 1, 0, 1, CKPT_DTYPE_F32, out,
                                      CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_ARG);
    ck_assert_int_eq(ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, f.w, UINT64_MAX / 2, 4, 0, f.scales, 1, 1, UINT64_MAX, 4,
                                      CKPT_DTYPE_F32, out, CKPT_OVERFLOW_INF, NULL, &err),
                     CKPT_ERR_ARG);
    free_fixture(f);
}
END_TEST

static Suite *fp8_suite(void)
{
    Suite *s = suite_create("fp8");
    TCase *tc = tcase_create("fp8");
    tcase_add_test(tc, every_fp8_code);
    tcase_add_test(tc, dequant_matches_torch);
    tcase_add_test(tc, dequant_policies_and_counts);
    tcase_add_test(tc, dequant_streamed_by_row_ranges);
    tcase_add_test(tc, other_block_sizes);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(fp8_suite());
}
