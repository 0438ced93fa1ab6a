/*
 * test_view.c: the catalog's checks and the strided copier, on storages built
 * here, against values worked out by hand.
 */
#include "helpers.h"

#include "libckpt/catalog/source.h"

#include <stdlib.h>
#include <string.h>

/* A source whose one "file" is a storage of 24 int16 values 0..23. */
static struct ckpt_source *storage_source(bool big_endian_bytes)
{
    struct ckpt_source *src = calloc(1, sizeof *src);
    ckpt_limits_default(&src->limits);
    uint8_t *data = malloc(48);
    for (int i = 0; i < 24; i++) {
        data[2 * i + (big_endian_bytes ? 1 : 0)] = (uint8_t)i;
        data[2 * i + (big_endian_bytes ? 0 : 1)] = 0;
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

START_TEST(transposed_view)
{
    struct ckpt_source *src = storage_source(false);
    /* storage as a 4x6 matrix, viewed transposed: [6, 4] with strides [1, 6] */
    struct tensor_view v = {0, 0, 48, 0, (int64_t[]){1, 6}, false};
    ck_assert_int_eq(source_add_tensor(src, "t", CKPT_DTYPE_I16, 2, (uint64_t[]){6, 4}, &v, NULL), CKPT_OK);
    static const int16_t want[] = {0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 21, 4, 10, 16, 22,
                                   5, 11, 17, 23};
    expect_values(src, "t", want, 24);
    /* rows 2..3 only */
    int16_t rows[8];
    ck_assert_int_eq(ckpt_source_read(src, 0, 2, 2, rows, sizeof rows, NULL), CKPT_OK);
    ck_assert_int_eq(rows[0], 2);
    ck_assert_int_eq(rows[7], 21);
    ckpt_source_free(src);
}
END_TEST

START_TEST(offset_slice_and_stride0)
{
    struct ckpt_source *src = storage_source(false);
    /* a [2, 3] slice starting at element 7 of a 4x6 matrix: rows 1-2, columns 1-3 */
    struct tensor_view slice = {0, 0, 48, 7, (int64_t[]){6, 1}, false};
    ck_assert_int_eq(source_add_tensor(src, "slice", CKPT_DTYPE_I16, 2, (uint64_t[]){2, 3}, &slice, NULL), CKPT_OK);
    expect_values(src, "slice", (int16_t[]){7, 8, 9, 13, 14, 15}, 6);
    /* expand: a [3] vector at offset 4 broadcast to [2, 3] with stride 0 */
    struct tensor_view expand = {0, 0, 48, 4, (int64_t[]){0, 1}, false};
    ck_assert_int_eq(source_add_tensor(src, "expand", CKPT_DTYPE_I16, 2, (uint64_t[]){2, 3}, &expand, NULL),
                     CKPT_OK);
    expect_values(src, "expand", (int16_t[]){4, 5, 6, 4, 5, 6}, 6);
    /* every other element of the storage, rank 1 */
    struct tensor_view every2 = {0, 0, 48, 1, (int64_t[]){2}, false};
    ck_assert_int_eq(source_add_tensor(src, "odd", CKPT_DTYPE_I16, 1, (uint64_t[]){5}, &every2, NULL), CKPT_OK);
    expect_values(src, "odd", (int16_t[]){1, 3, 5, 7, 9}, 5);
    int16_t two[2];
    size_t i;
    ck_assert_int_eq(ckpt_source_find(src, "odd", &i), CKPT_OK);
    ck_assert_int_eq(ckpt_source_read(src, i, 3, 2, two, sizeof two, NULL), CKPT_OK);
    ck_assert_int_eq(two[0], 7);
    ck_assert_int_eq(two[1], 9);
    /* 3-D with a permuted inner pair */
    struct tensor_view perm = {0, 0, 48, 0, (int64_t[]){12, 1, 3}, false};
    ck_assert_int_eq(source_add_tensor(src, "perm", CKPT_DTYPE_I16, 3, (uint64_t[]){2, 3, 4}, &perm, NULL), CKPT_OK);
    expect_values(src, "perm", (int16_t[]){0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, 12, 15, 18, 21, 13, 16, 19, 22, 14,
                                           17, 20, 23},
                  24);
    ckpt_source_free(src);
}
END_TEST

START_TEST(big_endian_storage)
{
    struct ckpt_source *src = storage_source(true);
    struct tensor_view v = {0, 0, 48, 0, NULL, true};
    ck_assert_int_eq(source_add_tensor(src, "be", CKPT_DTYPE_I16, 1, (uint64_t[]){24}, &v, NULL), CKPT_OK);
    int16_t want[24];
    for (int i = 0; i < 24; i++)
        want[i] = (int16_t)i;
    expect_values(src, "be", want, 24);
    ckpt_source_free(src);
}
END_TEST

START_TEST(views_outside_storage_refused)
{
    struct ckpt_source *src = storage_source(false);
    ckpt_error err;
    /* one element too far */
    struct tensor_view far = {0, 0, 48, 1, NULL, false};
    ck_assert_int_eq(source_add_tensor(src, "a", CKPT_DTYPE_I16, 1, (uint64_t[]){24}, &far, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "reads 50 bytes of a 48-byte storage"));
    /* strided reach beyond the storage */
    struct tensor_view wide = {0, 0, 48, 0, (int64_t[]){7, 1}, false};
    ck_assert_int_eq(source_add_tensor(src, "b", CKPT_DTYPE_I16, 2, (uint64_t[]){4, 6}, &wide, &err),
                     CKPT_ERR_FORMAT);
    /* negative stride */
    struct tensor_view neg = {0, 0, 48, 23, (int64_t[]){-1}, false};
    ck_assert_int_eq(source_add_tensor(src, "c", CKPT_DTYPE_I16, 1, (uint64_t[]){2}, &neg, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "negative stride"));
    /* strides whose reach overflows 64 bits */
    struct tensor_view huge = {0, 0, 48, 0, (int64_t[]){INT64_MAX, 1}, false};
    ck_assert_int_eq(source_add_tensor(src, "d", CKPT_DTYPE_I16, 2, (uint64_t[]){3, 1}, &huge, &err),
                     CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "overflow"));
    /* storage claimed past the end of the file */
    struct tensor_view past = {0, 40, 16, 0, NULL, false};
    ck_assert_int_eq(source_add_tensor(src, "e", CKPT_DTYPE_I16, 1, (uint64_t[]){8}, &past, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "outside the file"));
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 0);
    ckpt_source_free(src);
}
END_TEST

START_TEST(aliases_and_limits)
{
    struct ckpt_source *src = storage_source(false);
    struct tensor_view v = {0, 0, 48, 0, NULL, false};
    ck_assert_int_eq(source_add_tensor(src, "w", CKPT_DTYPE_I16, 1, (uint64_t[]){24}, &v, NULL), CKPT_OK);
    ck_assert_int_eq(source_add_alias(src, "tied", 0, NULL), CKPT_OK);
    ck_assert_int_eq(source_add_alias(src, "tied2", 1, NULL), CKPT_OK);
    ck_assert_str_eq(ckpt_source_tensor(src, 2)->alias_of, "w");
    ck_assert_ptr_null(ckpt_source_tensor(src, 0)->alias_of);
    ckpt_error err;
    ck_assert_int_eq(source_add_alias(src, "w", 0, &err), CKPT_ERR_FORMAT);
    src->limits.max_tensors = 3;
    ck_assert_int_eq(source_add_tensor(src, "x", CKPT_DTYPE_I16, 1, (uint64_t[]){1}, &v, &err), CKPT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.message, "max_tensors"));
    ckpt_source_free(src);
}
END_TEST

static Suite *view_suite(void)
{
    Suite *s = suite_create("view");
    TCase *tc = tcase_create("strided");
    tcase_add_test(tc, transposed_view);
    tcase_add_test(tc, offset_slice_and_stride0);
    tcase_add_test(tc, big_endian_storage);
    tcase_add_test(tc, views_outside_storage_refused);
    tcase_add_test(tc, aliases_and_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(view_suite());
}
