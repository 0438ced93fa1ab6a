/*
 * test_quant.c: the int8 weight quantizer against goldens that real torch
 * made with msModelSlim's operations in the weight's own type
 * (testdata/quant/make_quant_golden.py): every case, through the portable
 * reference and through ckpt_quantize_int8 (the vectorised path where this
 * CPU has one), byte for byte; scales alone; refusals.
 */
#include "helpers.h"

#include "libckpt/kernels/kernels.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *golden(const char *stem, const char *suffix, size_t want)
{
    char rel[256];
    snprintf(rel, sizeof rel, "quant/kernel/%s.%s", stem, suffix);
    char *path = test_testdata(rel);
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    ck_assert_msg(len == want, "%s: %zu bytes, expected %zu", rel, len, want);
    free(path);
    return data;
}

static json_t *cases(void)
{
    char *path = test_testdata("quant/kernel/golden.json");
    json_t *doc = json_load_file(path, 0, NULL);
    ck_assert_msg(doc != NULL, "cannot read %s", path);
    free(path);
    return doc;
}

/* The reference, and the public entry point (vectorised where possible). */
static int run(int path, ckpt_dtype dtype, const void *w, uint64_t rows, uint64_t cols, int8_t *q, float *scales)
{
    if (path == 1)
        return ckpt_quantize_int8(dtype, w, rows, cols, q, scales, NULL);
    uint64_t bad;
    return quant_portable(dtype, w, rows, cols, q, scales, &bad) ? CKPT_OK : CKPT_ERR_FORMAT;
}

START_TEST(every_golden_case)
{
    json_t *doc = cases();
    const json_t *list = json_object_get(doc, "cases");
    ck_assert_uint_ge(json_array_size(list), 30);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *c = json_array_get(list, i);
        const char *stem = json_string_value(json_object_get(c, "name"));
        ckpt_dtype dtype = ckpt_dtype_from_name(json_string_value(json_object_get(c, "dtype")));
        uint64_t rows = (uint64_t)json_integer_value(json_object_get(c, "rows"));
        uint64_t cols = (uint64_t)json_integer_value(json_object_get(c, "cols"));
        uint8_t *w = golden(stem, "weight", rows * cols * ckpt_dtype_size(dtype));
        uint8_t *want_q = golden(stem, "q", rows * cols), *want_s = golden(stem, "scale", rows * 4);
        int8_t *q = malloc(rows * cols);
        float *s = malloc(rows * sizeof *s);
        for (int p = 0; p < 2; p++) {
            memset(q, 0x55, rows * cols);
            ck_assert_int_eq(run(p, dtype, w, rows, cols, q, s), CKPT_OK);
            for (uint64_t r = 0; r < rows; r++) {
                ck_assert_msg(memcmp(s + r, want_s + 4 * r, 4) == 0, "%s (path %d) row %llu: scale %a, torch %a",
                              stem, p, (unsigned long long)r, (double)s[r], (double)((float *)want_s)[r]);
                for (uint64_t k = 0; k < cols; k++)
                    ck_assert_msg(q[r * cols + k] == (int8_t)want_q[r * cols + k],
                                  "%s (path %d) [%llu, %llu]: %d, torch %d", stem, p, (unsigned long long)r,
                                  (unsigned long long)k, q[r * cols + k], (int8_t)want_q[r * cols + k]);
            }
            /* scales alone are the same scales */
            memset(s, 0, rows * sizeof *s);
            ck_assert_int_eq(run(p, dtype, w, rows, cols, NULL, s), CKPT_OK);
            ck_assert_msg(memcmp(s, want_s, rows * 4) == 0, "%s (path %d): scales alone differ", stem, p);
        }
        free(q);
        free(s);
        free(w);
        free(want_q);
        free(want_s);
    }
    json_decref(doc);
}
END_TEST

/* The special rows, read as msModelSlim's arithmetic gives them (hand-worked, independent of torch). */
START_TEST(hand_worked_rows)
{
    /* bf16 0x42FE = 127: scale 127/127 = 1; 2.5 -> 2, 3.5 -> 4, -0.5 -> -0, 126.5 -> 126 (ties to even) */
    uint16_t row[] = {0x42FE, 0x4020, 0x4060, 0xBF00, 0x42FD};
    int8_t q[5];
    float s;
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_BF16, row, 1, 5, q, &s, NULL), CKPT_OK);
    ck_assert(s == 1.0f);
    ck_assert_int_eq(q[0], 127);
    ck_assert_int_eq(q[1], 2);
    ck_assert_int_eq(q[2], 4);
    ck_assert_int_eq(q[3], 0);
    ck_assert_int_eq(q[4], 126);
    /*
     * -127.5 dominates: 127.5 / 127 = 1.003937 rounds up to bf16 1.0078125 (the half step is 1.00390625);
     * -127.5 / 1.0078125 = -126.51 -> bf16 -126.5 -> -126 (tie to even); 127 / 1.0078125 = 126.02 -> 126
     */
    uint16_t neg[] = {0xC2FF, 0x42FE};
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_BF16, neg, 1, 2, q, &s, NULL), CKPT_OK);
    ck_assert(s == 1.0078125f);
    ck_assert_int_eq(q[0], -126);
    ck_assert_int_eq(q[1], 126);
    /* all zeros: the scale is float32's epsilon, every code 0 */
    float zeros[3] = {0.0f, -0.0f, 0.0f};
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_F32, zeros, 1, 3, q, &s, NULL), CKPT_OK);
    ck_assert(s == 0x1p-23f);
    ck_assert_int_eq(q[0] | q[1] | q[2], 0);
}
END_TEST

START_TEST(refusals)
{
    float row[40] = {0};
    int8_t q[40];
    float s[2];
    row[37] = NAN;   /* in the tail of the second row */
    ckpt_error err;
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_F32, row, 2, 20, q, s, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "row 1") != NULL, "%s", err.message);
    row[37] = 0.0f;
    row[3] = -INFINITY;   /* in the vector body of the first */
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_F32, row, 2, 20, q, s, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "row 0") != NULL, "%s", err.message);
    uint16_t inf16[16] = {0};
    inf16[9] = 0x7C00;   /* f16 +inf */
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_F16, inf16, 1, 16, q, s, NULL), CKPT_ERR_FORMAT);
    inf16[9] = 0x7F80;   /* bf16 +inf */
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_BF16, inf16, 1, 16, q, s, NULL), CKPT_ERR_FORMAT);
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_I32, row, 1, 4, q, s, NULL), CKPT_ERR_UNSUPPORTED);
    ck_assert_int_eq(ckpt_quantize_int8(CKPT_DTYPE_F32, row, UINT64_MAX, 2, q, s, NULL), CKPT_ERR_ARG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_golden_case);
    tcase_add_test(tc, hand_worked_rows);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return test_main(s);
}
