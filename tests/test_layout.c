/*
 * test_layout.c: FRACTAL_NZ, NC1HWC0 and FRACTAL_Z against the storage
 * shapes torch_npu's and ATB's own checks give (shared/docs/ascend.md),
 * element positions worked out by hand, and inverse transforms.
 */
#include "helpers.h"

#include "libckpt/kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

static void expect_nz_shape(const uint64_t *nd, uint32_t rank, unsigned bits, const uint64_t *want, uint32_t want_rank)
{
    uint64_t got[16];
    uint32_t got_rank;
    ck_assert_int_eq(ckpt_nz_shape(nd, rank, bits, 0, got, &got_rank, NULL), CKPT_OK);
    ck_assert_uint_eq(got_rank, want_rank);
    for (uint32_t d = 0; d < want_rank; d++)
        ck_assert_msg(got[d] == want[d], "dim %u: %llu, want %llu", d, (unsigned long long)got[d],
                      (unsigned long long)want[d]);
}

START_TEST(storage_shapes_from_ascend_docs)
{
    expect_nz_shape((uint64_t[]){128, 512}, 2, 8, (uint64_t[]){16, 8, 16, 32}, 4);
    expect_nz_shape((uint64_t[]){31, 127, 511}, 3, 8, (uint64_t[]){31, 16, 8, 16, 32}, 5);
    expect_nz_shape((uint64_t[]){128, 512}, 2, 16, (uint64_t[]){32, 8, 16, 16}, 4);
    expect_nz_shape((uint64_t[]){8, 100, 30}, 3, 16, (uint64_t[]){8, 2, 7, 16, 16}, 5);
    /* rank 1 is (1, N); fp32 and int4 C0 */
    expect_nz_shape((uint64_t[]){40}, 1, 16, (uint64_t[]){3, 1, 16, 16}, 4);
    expect_nz_shape((uint64_t[]){20, 40}, 2, 32, (uint64_t[]){3, 2, 16, 16}, 4);
    expect_nz_shape((uint64_t[]){20, 130}, 2, 4, (uint64_t[]){3, 2, 16, 64}, 4);
    ck_assert_uint_eq(ckpt_nz_c0(16), 16);
    ck_assert_uint_eq(ckpt_nz_c0(8), 32);
    ck_assert_uint_eq(ckpt_nz_c0(4), 64);
    ck_assert_uint_eq(ckpt_nz_c0(32), 16);
}
END_TEST

static uint16_t *numbered(size_t n)
{
    uint16_t *x = malloc(n * 2);
    for (size_t i = 0; i < n; i++)
        x[i] = (uint16_t)(i + 1);   /* never 0, so that padding is told apart */
    return x;
}

START_TEST(hand_worked_positions_and_padding)
{
    /* fp16 [20, 40]: C0 16, N1 3, Mp 32; element (17, 35) goes to (35/16)*32*16 + 17*16 + 35%16 = 1299 */
    uint16_t *x = numbered(20 * 40);
    uint16_t *nz = malloc(3 * 32 * 16 * 2);
    ck_assert_int_eq(ckpt_nd_to_nz(x, nz, (uint64_t[]){20, 40}, 2, 16, 0, NULL), CKPT_OK);
    ck_assert_uint_eq(nz[1299], x[17 * 40 + 35]);
    ck_assert_uint_eq(nz[0], x[0]);
    ck_assert_uint_eq(nz[16], x[40]);          /* row 1 of the first tile */
    ck_assert_uint_eq(nz[32 * 16], x[16]);     /* column block 1 starts at column 16 */
    /* padding: rows 20..31 of every block, and columns 40..47 of the last one */
    for (int j = 0; j < 3; j++)
        for (int r = 20; r < 32; r++)
            for (int c = 0; c < 16; c++)
                ck_assert_uint_eq(nz[(j * 32 + r) * 16 + c], 0);
    for (int r = 0; r < 20; r++)
        for (int c = 8; c < 16; c++)
            ck_assert_uint_eq(nz[(2 * 32 + r) * 16 + c], 0);
    /* transposed: [20, 40] tiled as [40, 20]: C0 16, N1 2, Mp 48; element (m=17, n=35) is tiled (35, 17) */
    uint16_t *t = malloc(2 * 48 * 16 * 2);
    ck_assert_int_eq(ckpt_nd_to_nz(x, t, (uint64_t[]){20, 40}, 2, 16, 1, NULL), CKPT_OK);
    ck_assert_uint_eq(t[(17 / 16) * 48 * 16 + 35 * 16 + 17 % 16], x[17 * 40 + 35]);
    free(x);
    free(nz);
    free(t);
}
END_TEST

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/*
 * ascend.md's formula, element by element: (b, m, n) goes to
 * b*(N1*Mp*C0) + (n/C0)*(Mp*C0) + m*C0 + n%C0, everything else is zero.
 * With `transpose` element (b, m, n) is tiled as (b, n, m).  Packed int4 is
 * taken as bytes, C0 32 of them.
 */
static uint8_t *naive_nz(const uint8_t *src, const uint64_t *shape, uint32_t rank, size_t es, uint64_t c0,
                         int transpose, size_t *size)
{
    uint64_t m = rank == 1 ? 1 : shape[rank - 2], n = shape[rank - 1], batches = 1;
    for (uint32_t d = 0; d + 2 < rank; d++)
        batches *= shape[d];
    uint64_t tm = transpose ? n : m, tn = transpose ? m : n;
    uint64_t n1 = (tn + c0 - 1) / c0, mp = (tm + 15) / 16 * 16;
    *size = batches * n1 * mp * c0 * es;
    uint8_t *dst = calloc(1, *size);
    for (uint64_t b = 0; b < batches; b++)
        for (uint64_t i = 0; i < m; i++)
            for (uint64_t j = 0; j < n; j++) {
                uint64_t row = transpose ? j : i, col = transpose ? i : j;
                uint64_t at = b * n1 * mp * c0 + (col / c0) * mp * c0 + row * c0 + col % c0;
                memcpy(dst + at * es, src + ((b * m + i) * n + j) * es, es);
            }
    return dst;
}

START_TEST(documented_shapes_hold_documented_positions)
{
    static const struct {
        uint64_t shape[3];
        uint32_t rank;
        unsigned bits;
        int transpose;
    } cases[] = {
        {{128, 512}, 2, 8, 0},   {{31, 127, 511}, 3, 8, 0}, {{128, 512}, 2, 16, 0}, {{8, 100, 30}, 3, 16, 0},
        {{40}, 1, 16, 0},        {{20, 40}, 2, 32, 0},      {{20, 130}, 2, 4, 0},   {{3, 50, 70}, 3, 16, 1},
        {{33, 65}, 2, 8, 1},     {{17, 5}, 2, 32, 1},
    };
    uint64_t seed = 4242;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint64_t count = 1, nzs[8], nz_count = 1;
        uint32_t rank = cases[k].rank, nzr;
        for (uint32_t d = 0; d < rank; d++)
            count *= cases[k].shape[d];
        unsigned bits = cases[k].bits;
        size_t nd_bytes = count * bits / 8, es = bits == 4 ? 1 : bits / 8;
        uint64_t c0 = bits == 4 ? 32 : ckpt_nz_c0(bits);
        uint64_t logical[3] = {cases[k].shape[0], cases[k].shape[1], cases[k].shape[2]};
        if (bits == 4)   /* as bytes: half the elements of a row */
            logical[rank - 1] /= 2;
        uint8_t *x = malloc(nd_bytes);
        for (size_t i = 0; i < nd_bytes; i++)
            x[i] = (uint8_t)(next_random(&seed) | 1);   /* never 0, so that padding is told apart */
        size_t want_size;
        uint8_t *want = naive_nz(x, logical, rank, es, c0, cases[k].transpose, &want_size);
        ck_assert_int_eq(ckpt_nz_shape(cases[k].shape, rank, bits, cases[k].transpose, nzs, &nzr, NULL), CKPT_OK);
        for (uint32_t d = 0; d < nzr; d++)
            nz_count *= nzs[d];
        ck_assert_uint_eq(nz_count * bits / 8, want_size);
        uint8_t *got = malloc(want_size);
        memset(got, 0xCC, want_size);
        ck_assert_int_eq(ckpt_nd_to_nz(x, got, cases[k].shape, rank, bits, cases[k].transpose, NULL), CKPT_OK);
        ck_assert_msg(memcmp(got, want, want_size) == 0, "case %zu differs from the formula", k);
        free(x);
        free(want);
        free(got);
    }
}
END_TEST

START_TEST(empty_tensors_move_nothing)
{
    /* a zero extent with huge others: nothing to do, and nothing to loop over */
    uint8_t a[4] = {1, 2, 3, 4}, b[4] = {9, 9, 9, 9};
    static const uint64_t shapes[][3] = {{1ull << 40, 0, 1}, {0, 1ull << 40, 1ull << 40}, {1ull << 62, 1ull << 62, 0}};
    for (int k = 0; k < 3; k++)
        for (int t = 0; t < 2; t++) {
            ck_assert_int_eq(ckpt_nd_to_nz(a, b, shapes[k], 3, 16, t, NULL), CKPT_OK);
            ck_assert_int_eq(ckpt_nz_to_nd(a, b, shapes[k], 3, 16, t, NULL), CKPT_OK);
        }
    uint64_t conv[4] = {1ull << 40, 0, 3, 3};
    ck_assert_int_eq(ckpt_conv_to_fractal_z(a, b, conv, 2, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_nchw_to_nc1hwc0(a, b, conv, 2, NULL), CKPT_OK);
    ck_assert_uint_eq(b[0], 9);
}
END_TEST

START_TEST(round_trips_on_random_shapes)
{
    uint64_t seed = 12345;
    static const unsigned bits[] = {4, 8, 16, 32};
    for (int trial = 0; trial < 200; trial++) {
        uint32_t rank = 1 + (uint32_t)(next_random(&seed) % 4);
        uint64_t shape[4], count = 1;
        for (uint32_t d = 0; d < rank; d++)
            shape[d] = 1 + next_random(&seed) % (d + 2 < rank ? 3 : 70);
        unsigned b = bits[trial % 4];
        if (b == 4)   /* packed int4 rows hold whole bytes */
            shape[rank - 1] += shape[rank - 1] % 2;
        int transpose = b != 4 && rank >= 2 && trial % 3 == 0;
        for (uint32_t d = 0; d < rank; d++)
            count *= shape[d];
        uint64_t nzs[8], nz_count = 1;
        uint32_t nzr;
        ck_assert_int_eq(ckpt_nz_shape(shape, rank, b, transpose, nzs, &nzr, NULL), CKPT_OK);
        for (uint32_t d = 0; d < nzr; d++)
            nz_count *= nzs[d];
        size_t nd_bytes = count * b / 8, nz_bytes = nz_count * b / 8;
        uint8_t *x = malloc(nd_bytes), *nz = malloc(nz_bytes), *back = malloc(nd_bytes);
        for (size_t i = 0; i < nd_bytes; i++)
            x[i] = (uint8_t)next_random(&seed);
        ck_assert_int_eq(ckpt_nd_to_nz(x, nz, shape, rank, b, transpose, NULL), CKPT_OK);
        ck_assert_int_eq(ckpt_nz_to_nd(nz, back, shape, rank, b, transpose, NULL), CKPT_OK);
        ck_assert_msg(memcmp(x, back, nd_bytes) == 0, "trial %d: round trip differs", trial);
        free(x);
        free(nz);
        free(back);
    }
}
END_TEST

START_TEST(fast_tiling_matches_portable)
{
    uint64_t seed = 99;
    static const uint64_t sizes[][2] = {{16, 32}, {17, 33}, {64, 256}, {100, 300}, {33, 64}, {200, 1000}, {15, 64}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (uint64_t c0 = 32; c0 <= 64; c0 += 32) {
            uint64_t rows = sizes[k][0], cols = sizes[k][1];
            uint64_t out = (cols + c0 - 1) / c0 * c0 * ((rows + 15) / 16 * 16);
            uint8_t *x = malloc(rows * cols), *a = malloc(out), *b = malloc(out);
            for (size_t i = 0; i < rows * cols; i++)
                x[i] = (uint8_t)next_random(&seed);
            memset(a, 0x55, out);
            memset(b, 0xAA, out);
            nz_tile_portable(x, a, rows, cols, c0);
            nz_tile_fast(x, b, rows, cols, c0);
            ck_assert_msg(memcmp(a, b, out) == 0, "%llux%llu C0 %llu bytes", (unsigned long long)rows,
                          (unsigned long long)cols, (unsigned long long)c0);
            free(x);
            free(a);
            free(b);
        }
    }
}
END_TEST

/*
 * The sink tiles a matrix from row blocks into panels of column blocks
 * (stream.c): every panel, filled block by block, must be the same bytes as
 * that panel's part of the whole matrix tiled at once.
 */
START_TEST(panels_from_row_blocks_match_the_whole_tiling)
{
    uint64_t seed = 7;
    static const uint64_t sizes[][2] = {{16, 32}, {17, 33}, {100, 300}, {33, 64}, {200, 1000}, {15, 64}, {64, 256}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (uint64_t c0 = 32; c0 <= 64; c0 += 32) {
            uint64_t rows = sizes[k][0], cols = sizes[k][1], mp = (rows + 15) / 16 * 16;
            uint64_t n1 = (cols + c0 - 1) / c0, out = n1 * c0 * mp;
            uint8_t *x = malloc(rows * cols), *whole = malloc(out), *panel = malloc(out);
            for (size_t i = 0; i < rows * cols; i++)
                x[i] = (uint8_t)(next_random(&seed) | 1);
            nz_tile_portable(x, whole, rows, cols, c0);
            for (int fast = 0; fast < 2; fast++) {
                for (uint64_t width = 1; width <= n1; width += 2) {
                    for (uint64_t j0 = 0; j0 < n1; j0 += width) {
                        uint64_t j1 = j0 + width < n1 ? j0 + width : n1;
                        memset(panel, 0xAA, out);
                        for (uint64_t r0 = 0; r0 < rows; r0 += 32) {   /* row blocks of 32, the last shorter */
                            struct nz_block b = {rows - r0 < 32 ? rows - r0 : 32, cols, c0, mp, j0, j1};
                            (fast ? nz_tile_block : nz_tile_block_portable)(x + r0 * cols, panel + r0 * c0, &b);
                        }
                        ck_assert_msg(memcmp(panel, whole + j0 * mp * c0, (j1 - j0) * mp * c0) == 0,
                                      "%llux%llu C0 %llu columns blocks [%llu, %llu)%s", (unsigned long long)rows,
                                      (unsigned long long)cols, (unsigned long long)c0, (unsigned long long)j0,
                                      (unsigned long long)j1, fast ? " (fast)" : "");
                    }
                }
            }
            free(x);
            free(whole);
            free(panel);
        }
    }
}
END_TEST

START_TEST(conv_layouts)
{
    /* NC1HWC0 of fp16 (2, 20, 3, 2): C0 16, C1 2; (1, 17, 2, 1) goes to ((((1*2+1)*3+2)*2+1)*16 + 1 = 369 */
    uint64_t fm[4] = {2, 20, 3, 2};
    uint16_t *x = numbered(2 * 20 * 3 * 2);
    uint64_t bytes = ckpt_conv_layout_bytes(fm, 2, 0);
    ck_assert_uint_eq(bytes, 2 * 2 * 3 * 2 * 16 * 2);
    uint16_t *y = malloc(bytes), *back = malloc(2 * 20 * 3 * 2 * 2);
    ck_assert_int_eq(ckpt_nchw_to_nc1hwc0(x, y, fm, 2, NULL), CKPT_OK);
    ck_assert_uint_eq(y[369], x[((1 * 20 + 17) * 3 + 2) * 2 + 1]);
    ck_assert_uint_eq(y[((0 * 2 + 1) * 3 * 2) * 16 + 4], 0);   /* channel 16 + 4 = 20 is padding */
    ck_assert_int_eq(ckpt_nc1hwc0_to_nchw(y, back, fm, 2, NULL), CKPT_OK);
    ck_assert_mem_eq(back, x, 2 * 20 * 3 * 2 * 2);
    free(x);
    free(y);
    free(back);
    /* FRACTAL_Z of fp16 weights (20, 20, 3, 3): N1 2, C1 2; (17, 18, 2, 1) goes to
     * ((1*9 + 2*3 + 1)*2 + 17/16)*16*16 + (17%16)*16 + 18%16 = 33*256 + 18 = 8466 */
    uint64_t wt[4] = {20, 20, 3, 3};
    x = numbered(20 * 20 * 9);
    bytes = ckpt_conv_layout_bytes(wt, 2, 1);
    ck_assert_uint_eq(bytes, 2 * 9 * 2 * 16 * 16 * 2);
    y = malloc(bytes);
    back = malloc(20 * 20 * 9 * 2);
    ck_assert_int_eq(ckpt_conv_to_fractal_z(x, y, wt, 2, NULL), CKPT_OK);
    ck_assert_uint_eq(y[8466], x[((17 * 20 + 18) * 3 + 2) * 3 + 1]);
    ck_assert_int_eq(ckpt_fractal_z_to_conv(y, back, wt, 2, NULL), CKPT_OK);
    ck_assert_mem_eq(back, x, 20 * 20 * 9 * 2);
    free(x);
    free(y);
    free(back);
}
END_TEST

/* ascend.md's conv formulas, element by element, for 1, 2 and 4-byte elements (C0 32, 16, 16). */
START_TEST(conv_layouts_follow_the_formulas)
{
    static const uint64_t shapes[][4] = {{3, 40, 2, 3}, {17, 33, 1, 2}, {1, 5, 3, 1}};
    uint64_t seed = 77;
    for (size_t es = 1; es <= 4; es *= 2)
        for (size_t k = 0; k < 3; k++) {
            const uint64_t *s = shapes[k];
            uint64_t c0 = es == 1 ? 32 : 16, c1 = (s[1] + c0 - 1) / c0, n1 = (s[0] + 15) / 16;
            size_t count = s[0] * s[1] * s[2] * s[3];
            size_t five_hd = s[0] * c1 * s[2] * s[3] * c0 * es, frac_z = c1 * s[2] * s[3] * n1 * 16 * c0 * es;
            ck_assert_uint_eq(ckpt_conv_layout_bytes(s, es, 0), five_hd);
            ck_assert_uint_eq(ckpt_conv_layout_bytes(s, es, 1), frac_z);
            uint8_t *x = malloc(count * es), *a = calloc(1, five_hd), *z = calloc(1, frac_z);
            uint8_t *got_a = malloc(five_hd), *got_z = malloc(frac_z), *back = malloc(count * es);
            for (size_t i = 0; i < count * es; i++)
                x[i] = (uint8_t)(next_random(&seed) | 1);
            for (uint64_t n = 0; n < s[0]; n++)
                for (uint64_t c = 0; c < s[1]; c++)
                    for (uint64_t h = 0; h < s[2]; h++)
                        for (uint64_t w = 0; w < s[3]; w++) {
                            const uint8_t *e = x + (((n * s[1] + c) * s[2] + h) * s[3] + w) * es;
                            uint64_t ia = (((n * c1 + c / c0) * s[2] + h) * s[3] + w) * c0 + c % c0;
                            uint64_t iz = (((c / c0) * s[2] * s[3] + h * s[3] + w) * n1 + n / 16) * 16 * c0 +
                                          (n % 16) * c0 + c % c0;
                            memcpy(a + ia * es, e, es);
                            memcpy(z + iz * es, e, es);
                        }
            memset(got_a, 0xCC, five_hd);
            memset(got_z, 0xCC, frac_z);
            ck_assert_int_eq(ckpt_nchw_to_nc1hwc0(x, got_a, s, es, NULL), CKPT_OK);
            ck_assert_int_eq(ckpt_conv_to_fractal_z(x, got_z, s, es, NULL), CKPT_OK);
            ck_assert_msg(memcmp(got_a, a, five_hd) == 0, "NC1HWC0, %zu-byte elements, shape %zu", es, k);
            ck_assert_msg(memcmp(got_z, z, frac_z) == 0, "FRACTAL_Z, %zu-byte elements, shape %zu", es, k);
            ck_assert_int_eq(ckpt_fractal_z_to_conv(got_z, back, s, es, NULL), CKPT_OK);
            ck_assert_mem_eq(back, x, count * es);
            free(x);
            free(a);
            free(z);
            free(got_a);
            free(got_z);
            free(back);
        }
}
END_TEST

START_TEST(refusals)
{
    uint64_t out[8];
    uint32_t r;
    ckpt_error err;
    ck_assert_int_eq(ckpt_nz_shape((uint64_t[]){4, 4}, 2, 12, 0, out, &r, &err), CKPT_ERR_ARG);
    ck_assert_int_eq(ckpt_nz_shape((uint64_t[]){4}, 0, 16, 0, out, &r, &err), CKPT_ERR_ARG);
    ck_assert_int_eq(ckpt_nz_shape((uint64_t[]){UINT64_MAX / 2, UINT64_MAX / 2}, 2, 16, 0, out, &r, &err),
                     CKPT_ERR_ARG);
    uint8_t a[8], b[1024];
    ck_assert_int_eq(ckpt_nd_to_nz(a, b, (uint64_t[]){1, 3}, 2, 4, 0, &err), CKPT_ERR_ARG);   /* odd int4 row */
    ck_assert_uint_eq(ckpt_conv_layout_bytes((uint64_t[]){1, 1, 1, 1}, 8, 0), 0);
}
END_TEST

static Suite *layout_suite(void)
{
    Suite *s = suite_create("layout");
    TCase *tc = tcase_create("nz");
    tcase_add_test(tc, storage_shapes_from_ascend_docs);
    tcase_add_test(tc, hand_worked_positions_and_padding);
    tcase_add_test(tc, documented_shapes_hold_documented_positions);
    tcase_add_test(tc, empty_tensors_move_nothing);
    tcase_add_test(tc, round_trips_on_random_shapes);
    tcase_add_test(tc, fast_tiling_matches_portable);
    tcase_add_test(tc, panels_from_row_blocks_match_the_whole_tiling);
    tcase_add_test(tc, conv_layouts);
    tcase_add_test(tc, conv_layouts_follow_the_formulas);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(layout_suite());
}
