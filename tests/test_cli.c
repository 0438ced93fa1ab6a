/*
 * test_cli.c: the ckpt program as a user and a CI job meet it: help, version,
 * exit statuses, the inspect table and its JSON document.
 */
#include "helpers.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

START_TEST(help_and_version)
{
    char *out, *err;
    ck_assert_int_eq(test_ckpt(&out, NULL, "--help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "inspect"));
    ck_assert_ptr_nonnull(strstr(out, "Exit status"));
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "--version"), 0);
    ck_assert_ptr_nonnull(strstr(out, CKPT_VERSION_STRING));
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "inspect --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "Usage: ckpt inspect"));
    free(out);
    ck_assert_int_eq(test_ckpt(NULL, &err, ""), 2);
    ck_assert_ptr_nonnull(strstr(err, "Usage"));
    free(err);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "frobnicate"), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown command 'frobnicate'"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "inspect"), 2);
    ck_assert_ptr_nonnull(strstr(err, "expects one checkpoint path"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "inspect --bogus x"), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown option '--bogus'"));
    free(err);
    static const char *const commands[] = {"inspect x", "convert x y", "verify x", "diff x y"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        ck_assert_int_eq(test_ckpt(NULL, &err, "%s --deepspeed-weights fp16", commands[i]), 2);
        ck_assert_ptr_nonnull(strstr(err, "--deepspeed-weights takes fp32 or module, not 'fp16'"));
        free(err);
    }
}
END_TEST

/* The open options: defaults, and a bad choice refused as the caller's mistake. */
START_TEST(open_options)
{
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    ck_assert_int_eq(opts.deepspeed_weights, CKPT_DEEPSPEED_FP32);
    ck_assert_uint_eq(opts.limits.max_rank, 64);
    char *sample = test_testdata("sample");
    ckpt_source *src = NULL;
    ckpt_error err;
    opts.deepspeed_weights = CKPT_DEEPSPEED_MODULE;   /* ignored by formats that are not DeepSpeed */
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &opts, &err), CKPT_OK);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 21);
    ckpt_source_free(src);
    opts.deepspeed_weights = (ckpt_deepspeed_weights)7;
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &opts, &err), CKPT_ERR_ARG);
    ck_assert_ptr_null(src);
    opts.deepspeed_weights = CKPT_DEEPSPEED_FP32;
    opts.limits.max_tensors = 3;
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &opts, &err), CKPT_ERR_LIMIT);
    free(sample);
}
END_TEST

START_TEST(bad_input_exits_3_with_one_line)
{
    char *abuse = test_external("safetensors-cpp/safetensors_abuse_attempt_1.safetensors");
    char *out, *err;
    ck_assert_int_eq(test_ckpt(&out, &err, "inspect '%s'", abuse), 3);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(strstr(err, abuse));
    ck_assert_ptr_nonnull(strstr(err, "header claims 1000 bytes"));
    ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);
    free(out);
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "inspect /nonexistent/model.safetensors"), 3);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/model.safetensors"));
    free(err);
    free(abuse);
}
END_TEST

START_TEST(inspect_table)
{
    char *sample = test_testdata("sample");
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "inspect '%s'", sample), 0);
    ck_assert_ptr_nonnull(strstr(out, "format:  safetensors\n"));
    ck_assert_ptr_nonnull(strstr(out, "files:   2\n"));
    ck_assert_ptr_nonnull(strstr(out, "tensors: 21\n"));
    ck_assert_ptr_nonnull(strstr(out, "bytes:   261504 (255.4 KiB)\n"));
    const char *line = strstr(out, "\nlm_head.weight ");
    ck_assert_ptr_nonnull(line);
    ck_assert_ptr_nonnull(strstr(line, "BF16"));
    ck_assert_ptr_nonnull(strstr(line, "[317, 64]"));
    ck_assert_ptr_nonnull(strstr(line, "model-00002-of-00002.safetensors\n"));
    free(out);
    free(sample);
}
END_TEST

START_TEST(inspect_json)
{
    char *sample = test_testdata("sample");
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "inspect --json '%s'", sample), 0);
    json_error_t jerr;
    json_t *doc = json_loads(out, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(doc != NULL, "not JSON: %s", jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "format")), "safetensors");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "file_count")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "tensor_count")), 21);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "total_bytes")), 261504);
    json_t *tensors = json_object_get(doc, "tensors");
    ck_assert_uint_eq(json_array_size(tensors), 21);
    json_t *first = json_array_get(tensors, 0);
    ck_assert_str_eq(json_string_value(json_object_get(first, "name")), "model.embed_tokens.weight");
    ck_assert_str_eq(json_string_value(json_object_get(first, "dtype")), "BF16");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(first, "shape"), 0)), 317);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "bytes")), 317 * 64 * 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "metadata"), "format")), "pt");
    json_decref(doc);
    free(out);
    free(sample);
}
END_TEST

START_TEST(inspect_every_external_safetensors)
{
    static const char *const files[] = {"candle/voices.safetensors", "candle/jfk-codes.safetensors",
                                        "safetensors-cpp/model.safetensors", "mlverse/hello.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = test_external(files[i]);
        char *out;
        ck_assert_int_eq(test_ckpt(&out, NULL, "inspect '%s'", path), 0);
        ck_assert_ptr_nonnull(strstr(out, "format:  safetensors"));
        free(out);
        free(path);
    }
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("inspect");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, help_and_version);
    tcase_add_test(tc, usage_errors_exit_2);
    tcase_add_test(tc, open_options);
    tcase_add_test(tc, bad_input_exits_3_with_one_line);
    tcase_add_test(tc, inspect_table);
    tcase_add_test(tc, inspect_json);
    tcase_add_test(tc, inspect_every_external_safetensors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(cli_suite());
}
