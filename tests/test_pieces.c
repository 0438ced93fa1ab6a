/*
 * test_pieces.c: tensors assembled from pieces (shards, chunks, flat runs),
 * on storages built here, against values worked out by hand; and the
 * refusals of pieces that leave gaps, overlap or reach outside.
 */
#include "helpers.h"

#include "libckpt/catalog/source.h"

#include <stdlib.h>
#include <string.h>

/* A source whose one "file" is a storage of 24 int16 values 0..23. */
static struct ckpt_source *storage_source(void)
{
    struct ckpt_source *src = calloc(1, sizeof *src);
    ckpt_limits_default(&src->limits);
    src->path = strdup("pieces");
    uint8_t *data = malloc(48);
    for (int i = 0; i < 24; i++) {
        data[2 * i] = (uint8_t)i;
        data[2 * i + 1] = 0;
    }
    uint32_t file;
    ck_assert_int_eq(source_add_buffer(src, "storage", data, 48, &file, NULL), CKPT_OK);
    return src;
}

static void expect_values(struct ckpt_source *src, const char *name, const int16_t *want, size_t n)
{
    const ckpt_tensor *t;
    uint8_t *got = test_read_tensor(src, name, &t);
    ck_assert_uint_eq(t->nbytes, n * 2);
    for (size_t i = 0; i < n; i++) {
        int16_t v;
        memcpy(&v, got + 2 * i, 2);
        ck_assert_msg(v == want[i], "%s[%zu] = %d, want %d", name, i, v, want[i]);
    }
    free(got);
}

/* A contiguous view of `count` storage elements from element `at`. */
static struct tensor_view at(uint64_t elem)
{
    return (struct tensor_view){0, 0, 48, elem, NULL, false};
}

START_TEST(rows_and_columns)
{
    struct ckpt_source *src = storage_source();
    /* [4, 6]: rows 0-1 from elements 0..11; rows 2-3 split in columns 0-2 (12..17) and 3-5 (18..23) */
    struct tensor_piece pieces[] = {
        {(uint64_t[]){0, 0}, (uint64_t[]){2, 6}, at(0)},
        {(uint64_t[]){2, 3}, (uint64_t[]){2, 3}, at(18)},
        {(uint64_t[]){2, 0}, (uint64_t[]){2, 3}, at(12)},
    };
    ck_assert_int_eq(source_add_pieces(src, "m", CKPT_DTYPE_I16, 2, (uint64_t[]){4, 6}, pieces, 3, NULL), CKPT_OK);
    static const int16_t want[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                   12, 13, 14, 18, 19, 20, 15, 16, 17, 21, 22, 23};
    expect_values(src, "m", want, 24);
    /* another name for it (a tied weight) reads the same pieces */
    ck_assert_int_eq(source_add_alias(src, "tied", 0, NULL), CKPT_OK);
    expect_values(src, "tied", want, 24);
    ck_assert_str_eq(ckpt_source_tensor(src, 1)->alias_of, "m");
    /* rows 1..2 only: one whole-line piece and two column pieces meet in the window */
    int16_t rows[12];
    ck_assert_int_eq(ckpt_source_read(src, 0, 1, 2, rows, sizeof rows, NULL), CKPT_OK);
    ck_assert_int_eq(memcmp(rows, want + 6, sizeof rows), 0);
    ckpt_source_free(src);
}
END_TEST

START_TEST(strided_piece_and_rank3)
{
    struct ckpt_source *src = storage_source();
    /* [2, 3] from a transposed view of elements 0..5 viewed as [3, 2]: rows (0 2 4) (1 3 5) */
    struct tensor_piece t[] = {{(uint64_t[]){0, 0}, (uint64_t[]){2, 3}, {0, 0, 48, 0, (int64_t[]){1, 2}, false}}};
    ck_assert_int_eq(source_add_pieces(src, "t", CKPT_DTYPE_I16, 2, (uint64_t[]){2, 3}, t, 1, NULL), CKPT_OK);
    expect_values(src, "t", (int16_t[]){0, 2, 4, 1, 3, 5}, 6);
    /* [2, 2, 3]: dimension 1 split in two, and the second half split again by columns */
    struct tensor_piece c[] = {
        {(uint64_t[]){0, 0, 0}, (uint64_t[]){2, 1, 3}, at(6)},    /* 6 7 8 | 9 10 11 */
        {(uint64_t[]){0, 1, 0}, (uint64_t[]){2, 1, 1}, at(20)},   /* 20 | 21 */
        {(uint64_t[]){0, 1, 1}, (uint64_t[]){2, 1, 2}, at(12)},   /* 12 13 | 14 15 */
    };
    ck_assert_int_eq(source_add_pieces(src, "c", CKPT_DTYPE_I16, 3, (uint64_t[]){2, 2, 3}, c, 3, NULL), CKPT_OK);
    expect_values(src, "c", (int16_t[]){6, 7, 8, 20, 12, 13, 9, 10, 11, 21, 14, 15}, 12);
    int16_t second[6];
    ck_assert_int_eq(ckpt_source_read(src, 1, 1, 1, second, sizeof second, NULL), CKPT_OK);
    ck_assert_int_eq(memcmp(second, (int16_t[]){9, 10, 11, 21, 14, 15}, sizeof second), 0);
    ckpt_source_free(src);
}
END_TEST

START_TEST(vector_pieces)
{
    struct ckpt_source *src = storage_source();
    struct tensor_piece v[] = {
        {(uint64_t[]){3}, (uint64_t[]){4}, at(0)},
        {(uint64_t[]){0}, (uint64_t[]){3}, at(20)},
    };
    ck_assert_int_eq(source_add_pieces(src, "v", CKPT_DTYPE_I16, 1, (uint64_t[]){7}, v, 2, NULL), CKPT_OK);
    expect_values(src, "v", (int16_t[]){20, 21, 22, 0, 1, 2, 3}, 7);
    int16_t mid[3];
    ck_assert_int_eq(ckpt_source_read(src, 0, 2, 3, mid, sizeof mid, NULL), CKPT_OK);
    ck_assert_int_eq(memcmp(mid, (int16_t[]){22, 0, 1}, sizeof mid), 0);
    ckpt_source_free(src);
}
END_TEST

START_TEST(flat_runs)
{
    struct ckpt_source *src = storage_source();
    /* [2, 3, 4] as runs of 7, 10 and 7 elements, stored out of order: the cuts fall mid-line and mid-matrix */
    struct tensor_run runs[] = {
        {0, 7, at(10)},
        {7, 10, at(0)},
        {17, 7, at(17)},
    };
    ck_assert_int_eq(source_add_runs(src, "r", CKPT_DTYPE_I16, 3, (uint64_t[]){2, 3, 4}, runs, 3, NULL), CKPT_OK);
    int16_t want[24];
    for (int i = 0; i < 24; i++)
        want[i] = (int16_t)(i < 7 ? 10 + i : i < 17 ? i - 7 : i);
    expect_values(src, "r", want, 24);
    /* a scalar from a run of one */
    struct tensor_run one[] = {{0, 1, at(5)}};
    ck_assert_int_eq(source_add_runs(src, "s", CKPT_DTYPE_I16, 0, NULL, one, 1, NULL), CKPT_OK);
    expect_values(src, "s", (int16_t[]){5}, 1);
    ckpt_source_free(src);
}
END_TEST

static void expect_refused(const struct tensor_piece *pieces, size_t n, const char *needle)
{
    struct ckpt_source *src = storage_source();
    ckpt_error err;
    ck_assert_int_eq(source_add_pieces(src, "bad", CKPT_DTYPE_I16, 2, (uint64_t[]){4, 6}, pieces, n, &err),
                     CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, needle) && strstr(err.message, "tensor bad") && strstr(err.message, "storage"),
                  "message: %s", err.message);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 0);
    ckpt_source_free(src);
}

START_TEST(refusals)
{
    /* a gap: rows 2-3 missing */
    expect_refused((struct tensor_piece[]){{(uint64_t[]){0, 0}, (uint64_t[]){2, 6}, at(0)}}, 1, "cover 12 of its 24");
    /* two pieces sharing row 1 (and a gap at row 3, so the volume adds up) */
    expect_refused((struct tensor_piece[]){{(uint64_t[]){0, 0}, (uint64_t[]){2, 6}, at(0)},
                                           {(uint64_t[]){1, 0}, (uint64_t[]){2, 6}, at(12)}},
                   2, "overlaps");
    /* a piece reaching past the last column */
    expect_refused((struct tensor_piece[]){{(uint64_t[]){0, 0}, (uint64_t[]){2, 6}, at(0)},
                                           {(uint64_t[]){2, 1}, (uint64_t[]){2, 6}, at(12)}},
                   2, "past dimension 1");
    /* more elements than the tensor */
    expect_refused((struct tensor_piece[]){{(uint64_t[]){0, 0}, (uint64_t[]){4, 6}, at(0)},
                                           {(uint64_t[]){0, 0}, (uint64_t[]){1, 1}, at(0)}},
                   2, "more elements");
    /* a piece whose view reads past its storage */
    expect_refused((struct tensor_piece[]){{(uint64_t[]){0, 0}, (uint64_t[]){4, 6}, at(1)}}, 1, "storage");
    /* an offset so large that offset + size wraps */
    expect_refused((struct tensor_piece[]){{(uint64_t[]){UINT64_MAX, 0}, (uint64_t[]){2, 6}, at(0)}}, 1,
                   "past dimension 0");
}
END_TEST

START_TEST(run_refusals)
{
    struct ckpt_source *src = storage_source();
    ckpt_error err;
    struct tensor_run past[] = {{0, 20, at(0)}, {20, 5, at(0)}};
    ck_assert_int_eq(source_add_runs(src, "p", CKPT_DTYPE_I16, 2, (uint64_t[]){4, 6}, past, 2, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "reaches past its 24 elements"), "%s", err.message);
    struct tensor_run twice[] = {{0, 12, at(0)}, {6, 12, at(0)}};
    ck_assert_int_eq(source_add_runs(src, "o", CKPT_DTYPE_I16, 2, (uint64_t[]){4, 6}, twice, 2, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "overlaps"), "%s", err.message);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 0);
    ckpt_source_free(src);
}
END_TEST

START_TEST(slices_and_adoption)
{
    struct ckpt_source *src = storage_source();
    ckpt_error err;
    uint32_t slice, base;
    /* elements 12..23 as a file of their own, read as a [2, 3] tensor from its element 3 on */
    ck_assert_int_eq(source_add_slice(src, 0, 24, 24, "storage@24", &slice, &err), CKPT_OK);
    struct tensor_view v = {slice, 0, 24, 3, NULL, false};
    ck_assert_int_eq(source_add_tensor(src, "s", CKPT_DTYPE_I16, 2, (uint64_t[]){2, 3}, &v, NULL), CKPT_OK);
    expect_values(src, "s", (int16_t[]){15, 16, 17, 18, 19, 20}, 6);
    ck_assert_int_eq(source_add_slice(src, 0, 40, 10, "storage@40", &slice, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "outside storage"), "%s", err.message);

    /* a scratch source's file, adopted: its index shifts by base */
    struct ckpt_source *scratch = source_new("scratch", NULL);
    uint8_t *data = malloc(4);
    memcpy(data, (int16_t[]){-7, 9}, 4);
    uint32_t file;
    ck_assert_int_eq(source_add_buffer(scratch, "two", data, 4, &file, NULL), CKPT_OK);
    ck_assert_int_eq(source_adopt_files(src, scratch, &base, NULL), CKPT_OK);
    ck_assert_uint_eq(base, 2);
    ck_assert_uint_eq(scratch->file_count, 0);
    ckpt_source_free(scratch);
    struct tensor_piece p[] = {{(uint64_t[]){0}, (uint64_t[]){2}, {base + file, 0, 4, 0, NULL, false}},
                               {(uint64_t[]){2}, (uint64_t[]){1}, at(23)}};
    ck_assert_int_eq(source_add_pieces(src, "a", CKPT_DTYPE_I16, 1, (uint64_t[]){3}, p, 2, NULL), CKPT_OK);
    expect_values(src, "a", (int16_t[]){-7, 9, 23}, 3);
    ckpt_source_free(src);
}
END_TEST

/* Qwen3-235B-sized: 94 layers x 128 experts x 2 GLU halves, one piece each, read from the 24-element storage. */
START_TEST(stacked_pieces_bounded_by_their_shape)
{
    struct ckpt_source *src = storage_source();
    size_t n = 94 * 128 * 2;
    struct tensor_piece *p = calloc(n, sizeof *p);
    uint64_t *boxes = calloc(n * 8, sizeof *boxes);
    for (size_t i = 0; i < n; i++) {
        uint64_t *off = boxes + 8 * i, *size = off + 4;
        off[0] = i / 256, off[1] = i / 2 % 128, off[2] = i % 2, off[3] = 0;
        size[0] = size[1] = size[2] = 1, size[3] = 3;
        p[i] = (struct tensor_piece){off, size, at(i % 8 * 3)};
    }
    ckpt_error err;
    ck_assert_int_eq(source_add_pieces(src, "experts", CKPT_DTYPE_I16, 4, (uint64_t[]){94, 128, 2, 3}, p, n, &err),
                     CKPT_OK);
    const ckpt_tensor *t;
    uint8_t *got = test_read_tensor(src, "experts", &t);
    int16_t last;
    memcpy(&last, got + t->nbytes - 2, 2);
    ck_assert_int_eq(last, (int16_t)((n - 1) % 8 * 3 + 2));   /* the last piece's last element, at(21) + 2 */
    free(got);
    /* as many pieces of a matrix: no framework cuts a [1, 72192] tensor into 24,064 columns of 3 */
    for (size_t i = 0; i < n; i++) {
        uint64_t *off = boxes + 8 * i, *size = off + 4;
        off[0] = 0, off[1] = 3 * i, size[0] = 1, size[1] = 3;
    }
    ck_assert_int_eq(source_add_pieces(src, "columns", CKPT_DTYPE_I16, 2, (uint64_t[]){1, 3 * n}, p, n, &err),
                     CKPT_ERR_LIMIT);
    ck_assert_msg(strstr(err.message, "24064 pieces, more than its shape allows (16384)"), "%s", err.message);
    free(p);
    free(boxes);
    ckpt_source_free(src);
}
END_TEST

/*
 * A tiling no grid makes: column c of an [N, N] matrix in two pieces, rows [0, c) and [c, N).  Its
 * extents along dim 0 meet without being equal, so only pairwise comparisons can check it, and there
 * are too many: refused as a limit, not checked for minutes.
 */
START_TEST(irregular_tiling_refused_fast)
{
    struct ckpt_source *src = storage_source();
    enum { N = 8192 };
    struct tensor_piece *p = calloc(2 * N, sizeof *p);
    uint64_t *boxes = calloc(2 * N * 4, sizeof *boxes);
    static const int64_t zero[2] = {0, 0};   /* every element read from storage element 0: no big buffer */
    size_t n = 0;
    for (uint64_t c = 0; c < N; c++)
        for (int half = 0; half < 2; half++) {
            uint64_t *off = boxes + 4 * n, *size = off + 2;
            off[0] = half ? c : 0, off[1] = c, size[0] = half ? N - c : c, size[1] = 1;
            p[n] = (struct tensor_piece){off, size, at(0)};
            p[n++].view.strides = zero;
        }
    ckpt_error err;
    ck_assert_int_eq(source_add_pieces(src, "staircase", CKPT_DTYPE_I16, 2, (uint64_t[]){N, N}, p, n, &err),
                     CKPT_ERR_LIMIT);
    ck_assert_msg(strstr(err.message, "too irregularly to check"), "%s", err.message);
    /* the same count of pieces as a grid (N columns, each in two equal halves) is checked at once */
    for (size_t i = 0; i < n; i++) {
        uint64_t *off = boxes + 4 * i, *size = off + 2;
        off[0] = i % 2 * (N / 2), off[1] = i / 2, size[0] = N / 2, size[1] = 1;
    }
    ck_assert_int_eq(source_add_pieces(src, "grid", CKPT_DTYPE_I16, 2, (uint64_t[]){N, N}, p, n, &err), CKPT_OK);
    free(p);
    free(boxes);
    ckpt_source_free(src);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pieces");
    TCase *tc = tcase_create("pieces");
    tcase_add_test(tc, rows_and_columns);
    tcase_add_test(tc, strided_piece_and_rank3);
    tcase_add_test(tc, vector_pieces);
    tcase_add_test(tc, flat_runs);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, run_refusals);
    tcase_add_test(tc, slices_and_adoption);
    tcase_add_test(tc, stacked_pieces_bounded_by_their_shape);
    tcase_add_test(tc, irregular_tiling_refused_fast);
    suite_add_tcase(s, tc);
    return test_main(s);
}
