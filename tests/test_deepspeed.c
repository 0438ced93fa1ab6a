/*
 * test_deepspeed.c: DeepSpeed ZeRO-2 and ZeRO-3 folders written by
 * testdata/deepspeed/make_fixtures.py: every rebuilt tensor against the
 * original full tensors torch wrote beside them, the module weights, the
 * CLI on both, and the refusals of damaged folders.
 */
#include "helpers.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens `path` with the given DeepSpeed weights choice, or fails the test. */
static ckpt_source *open_weights(const char *path, ckpt_deepspeed_weights weights)
{
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    opts.deepspeed_weights = weights;
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_msg(ckpt_source_open_ext(&src, path, &opts, &err) == CKPT_OK, "%s", err.message);
    return src;
}

/* Every tensor of the golden file, bit for bit, and no other tensor. */
static void expect_golden(const char *fixture, const char *golden_name, ckpt_deepspeed_weights weights)
{
    char *path = test_testdata(fixture);
    ckpt_source *src = open_weights(path, weights);
    ck_assert_str_eq(ckpt_source_format(src), "deepspeed");
    test_expect_golden(src, fixture, golden_name);
    /* the tied output layer is the same tensor, not a copy */
    size_t out;
    ck_assert_int_eq(ckpt_source_find(src, "out.weight", &out), CKPT_OK);
    ck_assert_str_eq(ckpt_source_tensor(src, out)->alias_of, "fc1.weight");
    ckpt_source_free(src);
    free(path);
}

START_TEST(zero2_fp32_equals_the_original)
{
    expect_golden("deepspeed/zero2", "deepspeed/golden_fp32.safetensors", CKPT_DEEPSPEED_FP32);
    /* the tag folder itself opens the same way */
    expect_golden("deepspeed/zero2/global_step7", "deepspeed/golden_fp32.safetensors", CKPT_DEEPSPEED_FP32);
}
END_TEST

/* ZeRO-1 saves the stage-2 layout; over 2 ranks the padding and the cuts differ */
START_TEST(zero1_fp32_equals_the_original)
{
    expect_golden("deepspeed/zero1", "deepspeed/golden_fp32.safetensors", CKPT_DEEPSPEED_FP32);
}
END_TEST

START_TEST(zero3_fp32_equals_the_original)
{
    expect_golden("deepspeed/zero3", "deepspeed/golden_fp32.safetensors", CKPT_DEEPSPEED_FP32);
}
END_TEST

START_TEST(module_weights)
{
    expect_golden("deepspeed/zero2", "deepspeed/golden_module.safetensors", CKPT_DEEPSPEED_MODULE);
    char *zero3 = test_testdata("deepspeed/zero3");
    ckpt_open_options opts;
    ckpt_open_options_default(&opts);
    opts.deepspeed_weights = CKPT_DEEPSPEED_MODULE;
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open_ext(&src, zero3, &opts, &err), CKPT_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.message, "placeholders"));
    char *errout;
    ck_assert_int_eq(test_ckpt(NULL, &errout, "inspect '%s' --deepspeed-weights module", zero3), 3);
    ck_assert_ptr_nonnull(strstr(errout, "global_step9"));
    free(errout);
    free(zero3);
}
END_TEST

/* inspect, convert and verify --against on both stages, with both weight choices where they exist. */
START_TEST(cli_on_both_stages)
{
    char *dir = test_tmpdir();
    static const char *const runs[][2] = {
        {"deepspeed/zero2", ""}, {"deepspeed/zero3", ""}, {"deepspeed/zero2", "--deepspeed-weights module"}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char *src = test_testdata(runs[i][0]), *out;
        char dst[4096];
        snprintf(dst, sizeof dst, "%s/out%zu", dir, i);
        ck_assert_int_eq(test_ckpt(&out, NULL, "inspect '%s' %s", src, runs[i][1]), 0);
        ck_assert_ptr_nonnull(strstr(out, "format:  deepspeed"));
        ck_assert_ptr_nonnull(strstr(out, "(alias of fc1.weight)"));
        free(out);
        ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s' --target nd --quiet %s", src, dst,
                                   runs[i][1]), 0);
        ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s' %s", dst, src, runs[i][1]), 0);
        free(src);
    }
    /* the manifest records the weights choice, so verify --against reads the source as convert did */
    char *zero2 = test_testdata("deepspeed/zero2"), manifest[4096];
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s/out2' --against '%s'", dir, zero2), 0);
    snprintf(manifest, sizeof manifest, "%s/out2/ckpt-manifest.json", dir);
    size_t len;
    char *text = (char *)test_read_file(manifest, &len);
    ck_assert_ptr_nonnull(strstr(text, "\"deepspeed_weights\": \"module\""));
    free(text);
    /* diff takes the choice itself: fp32 and bf16 are not the same tensors */
    char *module = test_testdata("deepspeed/golden_module.safetensors");
    ck_assert_int_eq(test_ckpt(NULL, NULL, "diff '%s' '%s' --deepspeed-weights module", module, zero2), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "diff '%s' '%s'", module, zero2), 1);
    free(module);
    free(zero2);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/*
 * A copy of a fixture's tag folder made of symlinks, leaving out `skip` and adding `extra` (may be NULL).
 * The links leave the copy (refused by the link policy), but only after the reader's refusal tested here.
 */
static char *copy_without(const char *fixture, const char *tag, const char *skip, const char *extra)
{
    char *dir = test_tmpdir(), *from = test_testdata(fixture);
    char a[4096], b[4096];
    snprintf(b, sizeof b, "%s/%s", dir, tag);
    ck_assert_int_eq(mkdir(b, 0755), 0);
    snprintf(b, sizeof b, "%s/latest", dir);
    test_write_file(b, tag, strlen(tag));
    snprintf(a, sizeof a, "%s/%s", from, tag);
    DIR *d = opendir(a);
    ck_assert_ptr_nonnull(d);
    const char *first = NULL;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || (skip && strcmp(e->d_name, skip) == 0))
            continue;
        snprintf(a, sizeof a, "%s/%s/%s", from, tag, e->d_name);
        snprintf(b, sizeof b, "%s/%s/%s", dir, tag, e->d_name);
        ck_assert_int_eq(symlink(a, b), 0);
        first = first ? first : e->d_name;
    }
    if (extra) {   /* any file will do: the name alone is refused */
        snprintf(a, sizeof a, "%s/%s/%s", from, tag, first);
        snprintf(b, sizeof b, "%s/%s/%s", dir, tag, extra);
        ck_assert_int_eq(symlink(a, b), 0);
    }
    closedir(d);
    free(from);
    return dir;
}

/* `ckpt inspect PATH` exits 3 with one line holding every needle. */
static void expect_refusal(const char *path, const char *const *needles, size_t n)
{
    char *out, *err;
    ck_assert_int_eq(test_ckpt(&out, &err, "inspect '%s'", path), 3);
    ck_assert_str_eq(out, "");
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strstr(err, needles[i]), "'%s' not in: %s", needles[i], err);
    ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);
    free(out);
    free(err);
}

START_TEST(refusals)
{
    char *dir = copy_without("deepspeed/zero2", "global_step7", "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt", NULL);
    expect_refusal(dir, (const char *[]){"global_step7/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt", "missing"}, 2);
    test_rmtree(dir);
    free(dir);
    dir = copy_without("deepspeed/zero2", "global_step7", NULL, "mp_rank_01_model_states.pt");
    expect_refusal(dir, (const char *[]){"mp_rank_01_model_states.pt", "tensor-parallel"}, 2);
    test_rmtree(dir);
    free(dir);
    /* ZeRO-3: every rank's model states are needed (frozen pieces), and its optimizer states */
    dir = copy_without("deepspeed/zero3", "global_step9", "zero_pp_rank_2_mp_rank_00_model_states.pt", NULL);
    expect_refusal(dir, (const char *[]){"global_step9/zero_pp_rank_2_mp_rank_00_model_states.pt", "missing"}, 2);
    test_rmtree(dir);
    free(dir);
    dir = copy_without("deepspeed/zero3", "global_step9", "zero_pp_rank_0_mp_rank_00_optim_states.pt", NULL);
    expect_refusal(dir, (const char *[]){"global_step9/zero_pp_rank_0_mp_rank_00_optim_states.pt", "missing"}, 2);
    test_rmtree(dir);
    free(dir);
    /* the last rank's partition of group 0 is cut short: fc1.weight cannot be rebuilt */
    char *bad = test_testdata("deepspeed/bad_short");
    expect_refusal(bad, (const char *[]){"bf16_zero_pp_rank_2_mp_rank_00_optim_states.pt", "tensor fc1.weight",
                                         "partitions hold 40 elements"}, 3);
    free(bad);
    /* rank 1 was saved with another data-parallel size */
    bad = test_testdata("deepspeed/bad_world");
    expect_refusal(bad, (const char *[]){"bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt", "partition_count 2",
                                         "rank 0's is 3"}, 3);
    free(bad);
    /* a `latest` that climbs out of the folder */
    dir = test_tmpdir();
    char latest[4096];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    test_write_file(latest, "../x\n", 5);
    expect_refusal(dir, (const char *[]){"latest", "not a checkpoint tag"}, 2);
    test_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deepspeed");
    TCase *tc = tcase_create("deepspeed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, zero2_fp32_equals_the_original);
    tcase_add_test(tc, zero1_fp32_equals_the_original);
    tcase_add_test(tc, zero3_fp32_equals_the_original);
    tcase_add_test(tc, module_weights);
    tcase_add_test(tc, cli_on_both_stages);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return test_main(s);
}
