/*
 * test_archive.c: the library side of archives: tensors read from a .nemo
 * member equal those of the unpacked file byte for byte, the inflated-size
 * limit refuses, and a torch.save zip named .zip stays a torch.save file.
 */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>

START_TEST(nemo_member_equals_original)
{
    char *nemo = test_testdata("archive/model.nemo");
    char *ckpt = test_testdata("archive/nemo_original/model_weights.ckpt");
    ckpt_source *a = test_open(nemo), *b = test_open(ckpt);
    ck_assert_uint_eq(ckpt_source_tensor_count(a), 4);
    ck_assert_uint_eq(ckpt_source_tensor_count(a), ckpt_source_tensor_count(b));
    for (size_t i = 0; i < ckpt_source_tensor_count(b); i++) {
        const ckpt_tensor *tb = ckpt_source_tensor(b, i), *ta;
        uint8_t *x = test_read_tensor(b, tb->name, &tb);
        uint8_t *y = test_read_tensor(a, tb->name, &ta);
        ck_assert_int_eq(ta->dtype, tb->dtype);
        ck_assert_uint_eq(ta->nbytes, tb->nbytes);
        ck_assert_msg(memcmp(x, y, tb->nbytes) == 0, "%s differs", tb->name);
        free(x);
        free(y);
    }
    ckpt_source_free(a);
    ckpt_source_free(b);
    free(nemo);
    free(ckpt);
}
END_TEST

START_TEST(inflated_size_is_capped)
{
    char *zst = test_testdata("archive/sample.tar.zst");
    ckpt_limits limits;
    ckpt_limits_default(&limits);
    limits.max_archive_bytes = 100000;   /* the sample inflates to about 262 KB */
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open(&src, zst, &limits, &err), CKPT_ERR_LIMIT);
    ck_assert_ptr_null(src);
    ck_assert_msg(strstr(err.message, "past 100000 bytes (limit max_archive_bytes)") != NULL, "%s", err.message);
    free(zst);
}
END_TEST

START_TEST(torch_zip_named_zip_is_a_file)
{
    char *dir = test_tmpdir();
    char *zip = test_join(dir, "weights.zip");
    size_t len;
    char *ckpt = test_testdata("archive/nemo_original/model_weights.ckpt");
    uint8_t *data = test_read_file(ckpt, &len);
    test_write_file(zip, data, len);
    ckpt_source *src = test_open(zip);
    ck_assert_str_eq(ckpt_source_format(src), "torch");
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 4);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(data);
    free(ckpt);
    free(zip);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("archive");
    TCase *tc = tcase_create("archive");
    tcase_add_test(tc, nemo_member_equals_original);
    tcase_add_test(tc, inflated_size_is_capped);
    tcase_add_test(tc, torch_zip_named_zip_is_a_file);
    suite_add_tcase(s, tc);
    return test_main(s);
}
