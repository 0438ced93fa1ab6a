/*
 * test_moe_sources.c: one tiny DeepSeek-V3-like model (dense first layers, MLA, routed and shared
 * experts, router bias, MTP) and one Qwen3-MoE-like model, in every training and release format
 * libckpt reads, each converted to the same Hugging Face tensors bit for bit.
 *
 * testdata/moe/make_moe_models.py builds the models (the DeepSeek one's linears exactly their fp8
 * release dequantized) and writes their Hugging Face tensors; make_legacy.py, make_torch_dist.py,
 * make_deepspeed.py and make_hf_sources.py cut those tensors as each framework holds them, citing
 * its code.  So the expected tensors come from the scripts, never from libckpt's merges.  Each
 * source is converted with `--target ascend-910b --rename hf` (DeepSpeed's, whose names are
 * the model's own, with the rules docs/deepspeed.md gives instead), compared with the original,
 * verified against its source; and converted with `--quant w8a8-dynamic` and verified against
 * its source too.
 */
#include "helpers.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof a / sizeof a[0])

/* DeepSpeed's MoE names back to Hugging Face's (docs/deepspeed.md). */
static const char deepspeed_rules[] =
    "*.mlp.moe.deepspeed_moe.experts.deepspeed_experts.*.* rename=$1.mlp.experts.$2.$3\n"
    "*.mlp.moe.deepspeed_moe.gate.wg.weight rename=$1.mlp.gate.weight\n"
    "*.mlp.moe.deepspeed_moe.gate.e_score_correction_bias rename=$1.mlp.gate.e_score_correction_bias\n"
    "*.mlp.deepspeed_moe.experts.deepspeed_experts.*.* rename=$1.mlp.experts.$2.$3\n"
    "*.mlp.deepspeed_moe.gate.wg.weight rename=$1.mlp.gate.weight\n";

struct source {
    const char *fixture;
    const char *options;   /* besides --target; "@rules" stands for the DeepSpeed rules file */
    bool without_mtp;      /* DeepSeek's convert.py leaves the MTP layer out */
};

static const struct source deepseek_v3[] = {
    {"moe/deepseek_v3_seq", "--rename hf", false},          /* Megatron legacy TP=2 x EP=2, SequentialMLP */
    {"moe/deepseek_v3_te", "--rename hf", false},           /* the same with TE grouped names, mtp_model_layer */
    {"moe/deepseek_v3_grouped", "--rename hf", false},      /* TP=2 x EP=4 ETP=1 over PP=2, legacy GroupedMLP */
    {"moe/deepseek_v3_dist", "--rename hf", false},         /* Megatron torch_dist */
    {"moe/deepseek_v3_deepspeed", "--deepspeed-weights module @rules", false},
    {"moe/deepseek_v3_deepspeed", "@rules", false},          /* fp32: dense rebuilt from ZeRO-2, experts 16-bit */
    {"moe/deepseek_v3_fp8", "--rename hf", false},          /* Hugging Face, fp8 with block scales */
    {"moe/deepseek_v3_mp", "--rename hf", true},            /* DeepSeek's model{i}-mp2.safetensors */
    {"moe/deepseek_v3_fused", "--rename hf", false},        /* transformers >= 5's fused experts */
    {"moe/deepseek_v3_fp8_fused", "--rename hf", false},    /* the same in fp8, block scales fused alike */
};

static const struct source qwen3_moe[] = {
    {"moe/qwen3_moe_te", "--rename hf", false},
    {"moe/qwen3_moe_pp2", "--rename hf", false},
    {"moe/qwen3_moe_dist", "--rename hf", false},
    {"moe/qwen3_moe_nemo2", "--rename hf", false},
    {"moe/qwen3_moe_deepspeed", "--deepspeed-weights module @rules", false},
    {"moe/qwen3_moe_deepspeed", "@rules", false},
    {"moe/qwen3_moe_fused", "--rename hf", false},
};

/* The options with @rules replaced by a rules file written in dir (malloc'd). */
static char *options_of(const struct source *s, const char *dir)
{
    char *out = malloc(strlen(s->options) + strlen(dir) + 64);
    const char *at = strstr(s->options, "@rules");
    if (!at) {
        strcpy(out, s->options);
        return out;
    }
    char *rules = test_join(dir, "deepspeed.rules");
    test_write_file(rules, deepspeed_rules, strlen(deepspeed_rules));
    sprintf(out, "%.*s--rules '%s'%s", (int)(at - s->options), s->options, rules, at + 6);
    free(rules);
    return out;
}

/*
 * Every tensor of `out` is the golden's of its name, type, shape and bytes; the golden has no
 * other, but those under `missing_prefix` (NULL: none).
 */
static void expect_original(const ckpt_source *out, const char *label, const char *golden_rel,
                            const char *missing_prefix)
{
    char *path = test_testdata(golden_rel);
    ckpt_source *golden = test_open(path);
    size_t expected = 0;
    for (size_t i = 0; i < ckpt_source_tensor_count(golden); i++) {
        const char *name = ckpt_source_tensor(golden, i)->name;
        size_t at;
        if (missing_prefix && strncmp(name, missing_prefix, strlen(missing_prefix)) == 0) {
            ck_assert_msg(ckpt_source_find(out, name, &at) != CKPT_OK, "%s: %s should not be there", label, name);
            continue;
        }
        expected++;
        const ckpt_tensor *want, *got;
        uint8_t *w = test_read_tensor(golden, name, &want), *g = test_read_tensor(out, name, &got);
        ck_assert_msg(got->dtype == want->dtype, "%s: %s: %s", label, name, ckpt_dtype_name(got->dtype));
        ck_assert_uint_eq(got->rank, want->rank);
        ck_assert_mem_eq(got->shape, want->shape, want->rank * sizeof *want->shape);
        ck_assert_msg(memcmp(g, w, want->nbytes) == 0, "%s: %s differs from the original", label, name);
        free(w);
        free(g);
    }
    ck_assert_msg(ckpt_source_tensor_count(out) == expected, "%s: %zu tensors, the original has %zu", label,
                  ckpt_source_tensor_count(out), expected);
    ckpt_source_free(golden);
    free(path);
}

static void convert_and_verify(const struct source *s, const char *golden_rel, const char *mtp_prefix)
{
    char *dir = test_tmpdir(), *src = test_testdata(s->fixture), *opts = options_of(s, dir);
    char *renamed = test_join(dir, "renamed"), *quantized = test_join(dir, "quantized"), *err = NULL, *out = NULL;
    int status = test_ckpt(NULL, &err, "convert '%s' '%s' --quiet --target ascend-910b %s", src, renamed,
                           opts);
    ck_assert_msg(status == 0, "%s: %s", s->fixture, err);
    free(err);
    ckpt_source *got = test_open(renamed);
    expect_original(got, s->fixture, golden_rel, s->without_mtp ? mtp_prefix : NULL);
    ckpt_source_free(got);
    ck_assert_msg(test_ckpt(&out, NULL, "verify '%s' --against '%s'", renamed, src) == 0, "%s: %s", s->fixture, out);
    free(out);
    out = err = NULL;
    status = test_ckpt(NULL, &err, "convert '%s' '%s' --quiet --target ascend-910b --quant w8a8-dynamic %s",
                       src, quantized, opts);
    ck_assert_msg(status == 0, "%s --quant w8a8-dynamic: %s", s->fixture, err);
    free(err);
    ck_assert_msg(test_ckpt(&out, NULL, "verify '%s' --against '%s'", quantized, src) == 0, "%s quantized: %s",
                  s->fixture, out);
    free(out);
    test_rmtree(dir);
    free(quantized);
    free(renamed);
    free(opts);
    free(src);
    free(dir);
}

START_TEST(deepseek_v3_from_every_format)
{
    for (size_t i = 0; i < COUNT(deepseek_v3); i++)
        convert_and_verify(&deepseek_v3[i], "moe/deepseek_v3/model.safetensors", "model.layers.5.");
}
END_TEST

START_TEST(qwen3_moe_from_every_format)
{
    for (size_t i = 0; i < COUNT(qwen3_moe); i++)
        convert_and_verify(&qwen3_moe[i], "moe/qwen3_moe/model.safetensors", NULL);
}
END_TEST

/* Fused experts stay as stored unless asked (the rename set asks), and only for the models transformers fuses so. */
START_TEST(fused_experts_split_on_request)
{
    char *path = test_testdata("moe/qwen3_moe_fused"), *tmp = test_tmpdir(), *copy = test_join(tmp, "other");
    ckpt_source *src = test_open(path);
    size_t at;
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.1.mlp.experts.gate_up_proj", &at), CKPT_OK);
    ck_assert_uint_eq(ckpt_source_tensor(src, at)->rank, 3);
    ckpt_source_free(src);
    ckpt_open_options o;
    ckpt_open_options_default(&o);
    ckpt_open_options_for_rename(&o, "hf");
    ck_assert_int_eq(o.experts, CKPT_EXPERTS_SPLIT);
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open_ext(&src, path, &o, &err), CKPT_OK);
    ck_assert_int_ne(ckpt_source_find(src, "model.layers.1.mlp.experts.gate_up_proj", &at), CKPT_OK);
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.1.mlp.experts.7.up_proj.weight", &at), CKPT_OK);
    static const uint64_t up[2] = {24, 48};
    ck_assert_mem_eq(ckpt_source_tensor(src, at)->shape, up, sizeof up);
    ckpt_source_free(src);
    /* the file alone: config.json is its folder's */
    char *file = test_join(path, "model.safetensors");
    ck_assert_int_eq(ckpt_source_open_ext(&src, file, &o, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.2.mlp.experts.0.down_proj.weight", &at), CKPT_OK);
    ckpt_source_free(src);
    free(file);
    /* a model_type transformers does not read per expert (gpt-oss fuses [E, H, 2F] interleaved): as stored */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && sed -i 's/\"qwen3_moe\"/\"gpt_oss\"/' '%s/config.json'", path,
             copy, copy);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(ckpt_source_open_ext(&src, copy, &o, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.1.mlp.experts.gate_up_proj", &at), CKPT_OK);
    ckpt_source_free(src);
    test_rmtree(tmp);
    free(copy);
    free(tmp);
    free(path);
}
END_TEST

/* Converted in two parts and merged, the fused experts come apart in each part as in one process. */
START_TEST(fused_experts_in_parts)
{
    char *dir = test_tmpdir(), *src = test_testdata("moe/qwen3_moe_fused"), *out = test_join(dir, "out"), *err = NULL;
    for (int k = 1; k <= 2; k++) {
        ck_assert_msg(test_ckpt(NULL, &err, "convert '%s' '%s' --quiet --target ascend-910b --rename hf --part %d/2",
                                src, out, k) == 0, "part %d: %s", k, err);
        free(err);
    }
    ck_assert_msg(test_ckpt(NULL, &err, "manifest merge '%s'", out) == 0, "merge: %s", err);
    free(err);
    ckpt_source *got = test_open(out);
    expect_original(got, "qwen3_moe_fused in 2 parts", "moe/qwen3_moe/model.safetensors", NULL);
    ckpt_source_free(got);
    char *verify = NULL;
    ck_assert_msg(test_ckpt(&verify, NULL, "verify '%s' --against '%s'", out, src) == 0, "%s", verify);
    free(verify);
    test_rmtree(dir);
    free(out);
    free(src);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("moe_sources");
    TCase *tc = tcase_create("moe_sources");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, deepseek_v3_from_every_format);
    tcase_add_test(tc, qwen3_moe_from_every_format);
    tcase_add_test(tc, fused_experts_split_on_request);
    tcase_add_test(tc, fused_experts_in_parts);
    suite_add_tcase(s, tc);
    return test_main(s);
}
