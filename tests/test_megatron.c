/*
 * test_megatron.c: Megatron-LM legacy-layout checkpoints written by
 * testdata/megatron/make_fixtures.py (a GQA SwiGLU Llama cut TP=2 PP=2 in
 * Megatron-core names; a GELU model cut TP=2 in legacy names), merged back
 * and compared bit for bit with the full tensors the script held before
 * cutting; the args as metadata; each refusal naming the file and tensor;
 * and the conversion to Hugging Face names against converting the original
 * Hugging Face model directly, with and without biases.
 */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_merged(const char *fixture, const char *golden)
{
    char *path = test_testdata(fixture);
    ckpt_source *src = test_open(path);
    ck_assert_str_eq(ckpt_source_format(src), "megatron");
    test_expect_golden(src, fixture, golden);   /* no _extra_state, optimizer or rng tensor either */
    ckpt_source_free(src);
    free(path);
}

START_TEST(merged_tensors_equal_the_originals)
{
    expect_merged("megatron/pooler", "megatron/full/pooler.safetensors");   /* plain Linears whole on each rank */
    expect_merged("megatron/tp2pp2", "megatron/full/core.safetensors");
    expect_merged("megatron/tp2pp2/iter_0000010", "megatron/full/core.safetensors");   /* the iteration itself */
    expect_merged("megatron/legacy", "megatron/full/legacy.safetensors");             /* "release", nested dicts */
}
END_TEST

static void expect_metadata(const ckpt_source *src, const char *key, const char *value)
{
    const char *v = ckpt_source_metadata_value(src, key);
    ck_assert_msg(v, "no metadata %s", key);
    ck_assert_msg(strcmp(v, value) == 0, "%s = %s, not %s", key, v, value);
}

START_TEST(args_become_metadata)
{
    char *path = test_testdata("megatron/tp2pp2");
    ckpt_source *src = test_open(path);
    static const char *const want[][2] = {
        {"megatron.num_layers", "4"},          {"megatron.hidden_size", "32"},
        {"megatron.ffn_hidden_size", "48"},    {"megatron.num_attention_heads", "4"},
        {"megatron.num_query_groups", "2"},    {"megatron.kv_channels", "8"},
        {"megatron.heads_per_group", "2"},     {"megatron.padded_vocab_size", "64"},
        {"megatron.vocab_size", "60"},         {"megatron.max_position_embeddings", "128"},
        {"megatron.swiglu", "true"},           {"megatron.norm_epsilon", "1e-05"},
        {"megatron.rotary_base", "10000"},     {"megatron.tensor_model_parallel_size", "2"},
        {"megatron.pipeline_model_parallel_size", "2"}, {"megatron.iteration", "10"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        expect_metadata(src, want[i][0], want[i][1]);
    ckpt_source_free(src);
    free(path);
    path = test_testdata("megatron/legacy");
    src = test_open(path);
    expect_metadata(src, "megatron.swiglu", "false");
    expect_metadata(src, "megatron.pipeline_model_parallel_size", "1");
    ckpt_source_free(src);
    free(path);
}
END_TEST

/* `ckpt inspect PATH` exits 3 with every needle in its message. */
static void expect_refused(const char *path, const char *const *needles, size_t n)
{
    char *errout = NULL;
    ck_assert_int_eq(test_ckpt(NULL, &errout, "inspect '%s'", path), 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strstr(errout, needles[i]), "'%s' not in: %s", needles[i], errout);
    free(errout);
}

START_TEST(defects_are_refused)
{
    char *bad = test_testdata("megatron/bad_norm");
    const char *const norm[] = {"iter_0000010/mp_rank_00/model_optim_rng.pt",
                                "iter_0000010/mp_rank_01/model_optim_rng.pt", "decoder.final_layernorm.weight",
                                "differs"};
    expect_refused(bad, norm, 4);
    free(bad);

    /* a rank file missing from a copy of the TP=2 PP=2 folder */
    char *tmp = test_tmpdir(), *src = test_testdata("megatron/tp2pp2"), cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s/ckpt' && rm '%s/ckpt/iter_0000010/mp_rank_01_001/model_optim_rng.pt'",
             src, tmp, tmp);
    ck_assert_int_eq(system(cmd), 0);
    char *copy = test_join(tmp, "ckpt");
    const char *const missing[] = {"iter_0000010/mp_rank_01_001/model_optim_rng.pt: missing"};
    expect_refused(copy, missing, 1);
    /* latest_checkpointed_iteration.txt naming an iteration that is not there */
    char *latest = test_join(copy, "latest_checkpointed_iteration.txt");
    test_write_file(latest, "20\n", 3);
    const char *const absent[] = {"latest_checkpointed_iteration.txt: names", "iter_0000020"};
    expect_refused(copy, absent, 2);
    test_write_file(latest, "ten", 3);
    const char *const garbled[] = {"'ten' is neither an iteration number nor 'release'"};
    expect_refused(copy, garbled, 1);
    test_rmtree(tmp);
    free(latest);
    free(copy);
    free(src);
    free(tmp);

    char *uneven = test_testdata("megatron/uneven"), *virtual = test_testdata("megatron/virtual");
    ckpt_source_free(test_open(uneven));   /* a first-stage size means nothing without pipeline stages */
    const char *const model0[] = {"mp_rank_00/model_optim_rng.pt", "virtual pipeline stages"};
    expect_refused(virtual, model0, 2);
    free(uneven);
    free(virtual);
}
END_TEST

START_TEST(cli_inspect_convert_verify)
{
    char *src = test_testdata("megatron/tp2pp2"), *tmp = test_tmpdir(), *out = NULL;
    ck_assert_int_eq(test_ckpt(&out, NULL, "inspect '%s'", src), 0);
    ck_assert_ptr_nonnull(strstr(out, "format:  megatron"));
    ck_assert_ptr_nonnull(strstr(out, "decoder.layers.3.mlp.linear_fc1.weight"));
    free(out);
    char *dst = test_join(tmp, "out");
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s' --target ascend-310p --quiet", src, dst), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", dst, src), 0);
    test_rmtree(tmp);
    free(dst);
    free(tmp);
    free(src);
}
END_TEST

/* #7: converting the Megatron checkpoint to Hugging Face names gives what converting the original gives. */
START_TEST(hf_llama_rename_equals_the_original)
{
    char *src = test_testdata("megatron/tp2pp2"), *hf = test_testdata("megatron/hf"), *tmp = test_tmpdir();
    char *a = test_join(tmp, "from_megatron"), *b = test_join(tmp, "from_hf");
    ck_assert_int_eq(
        test_ckpt(NULL, NULL, "convert '%s' '%s' --rename hf-llama --target ascend-310p --quiet", src, a), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s' --target ascend-310p --quiet", hf, b), 0);
    char *out = NULL;
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", a, b), 0);
    ck_assert_ptr_nonnull(strstr(out, "39 checks, 0 failed"));
    free(out);
    test_rmtree(tmp);
    free(a);
    free(b);
    free(tmp);
    free(hf);
    free(src);
}
END_TEST

/*
 * Biased models: q/k/v biases alone (a Qwen2 model) and every linear layer's bias (Llama with
 * attention_bias and mlp_bias), merged over TP=2 and renamed, equal the Hugging Face originals
 * bit for bit, tensor for tensor, and the config.json written says which model they are.
 */
static void check_biased(const char *fixture, const char *original)
{
    char *src = test_testdata(fixture), *hf = test_testdata(original), *tmp = test_tmpdir();
    char *dst = test_join(tmp, "out"), *out = NULL, want[64];
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s' --rename hf-llama --target nd --quiet", src, dst), 0);
    ckpt_source *h = test_open(hf);
    snprintf(want, sizeof want, "diff: %zu checks, 0 failed", ckpt_source_tensor_count(h));
    ckpt_source_free(h);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", dst, hf), 0);
    ck_assert_msg(strstr(out, want), "%s: %s", fixture, out);
    free(out);
    char *made_path = test_join(dst, "config.json"), *want_path = test_join(hf, "config.json");
    json_t *made = json_load_file(made_path, 0, NULL), *config = json_load_file(want_path, 0, NULL);
    ck_assert_ptr_nonnull(made);
    const char *key;
    json_t *value;
    json_object_foreach(config, key, value)
        ck_assert_msg(json_equal(json_object_get(made, key), value), "%s: config.json %s differs", fixture, key);
    json_decref(made);
    json_decref(config);
    size_t len;
    char *text = (char *)test_read_file(made_path, &len);
    static const char theta[] = "\"rope_theta\": 10000.0,";   /* not 1e4 */
    ck_assert_ptr_nonnull(memmem(text, len, theta, sizeof theta - 1));
    free(text);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", dst, src), 0);
    test_rmtree(tmp);
    free(made_path);
    free(want_path);
    free(dst);
    free(tmp);
    free(hf);
    free(src);
}

START_TEST(biases_rename_to_their_model)
{
    check_biased("megatron/qkv_bias", "megatron/hf_qkv_bias");
    check_biased("megatron/biases", "megatron/hf_biases");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("megatron");
    TCase *tc = tcase_create("megatron");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, merged_tensors_equal_the_originals);
    tcase_add_test(tc, args_become_metadata);
    tcase_add_test(tc, defects_are_refused);
    tcase_add_test(tc, cli_inspect_convert_verify);
    tcase_add_test(tc, hf_llama_rename_equals_the_original);
    tcase_add_test(tc, biases_rename_to_their_model);
    suite_add_tcase(s, tc);
    return test_main(s);
}
