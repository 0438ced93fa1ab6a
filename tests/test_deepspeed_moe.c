/*
 * test_deepspeed_moe.c: DeepSpeed MoE checkpoints (testdata/moe/make_deepspeed.py: the tiny
 * DeepSeek-V3-like and Qwen3-MoE-like models of make_moe_models.py, their MoE blocks DeepSpeed's
 * native MoE over EP=2, saved as DeepSpeed's engine saves them).
 *
 * Every routed expert comes from its layer_L_expert_E file under the key it holds, and the rules of
 * docs/deepspeed.md give back the Hugging Face originals bit for bit; with the fp32 weights the
 * dense groups are rebuilt from the ZeRO partitions (an expert group's cannot be placed: the
 * experts stay 16-bit).  A folder whose expert files are missing, doubled, misnamed or
 * tensor-parallel is refused, and so are expert files beside ZeRO-3 model states.
 */
#include "helpers.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* docs/deepspeed.md: DeepSpeed's MoE names back to Hugging Face's (the DeepSeek-like model wraps it as mlp.moe). */
static const char to_hf[] =
    "*.mlp.moe.deepspeed_moe.experts.deepspeed_experts.*.* rename=$1.mlp.experts.$2.$3\n"
    "*.mlp.moe.deepspeed_moe.gate.wg.weight rename=$1.mlp.gate.weight\n"
    "*.mlp.moe.deepspeed_moe.gate.e_score_correction_bias rename=$1.mlp.gate.e_score_correction_bias\n"
    "*.mlp.deepspeed_moe.experts.deepspeed_experts.*.* rename=$1.mlp.experts.$2.$3\n"
    "*.mlp.deepspeed_moe.gate.wg.weight rename=$1.mlp.gate.weight\n";

#define COUNT(a) (sizeof a / sizeof a[0])

/* With the module weights (target nd) or the fp32 ones cast to bf16 (ascend-910b), the originals. */
static void convert_to_original(const char *fixture, const char *golden, const char *weights)
{
    char *dir = test_tmpdir(), *src = test_testdata(fixture), *out = test_join(dir, "out");
    char *rules = test_join(dir, "to_hf.rules"), *err = NULL;
    test_write_file(rules, to_hf, strlen(to_hf));
    int status = test_ckpt(NULL, &err, "convert '%s' '%s' --quiet --target %s --deepspeed-weights %s --rules '%s'",
                           src, out, strcmp(weights, "fp32") == 0 ? "ascend-910b" : "nd", weights, rules);
    ck_assert_msg(status == 0, "%s: %s", fixture, err);
    free(err);
    ckpt_source *got = test_open(out);
    test_expect_golden(got, fixture, golden);
    ckpt_source_free(got);
    char *verify = NULL;
    ck_assert_msg(test_ckpt(&verify, NULL, "verify '%s' --against '%s'", out, src) == 0, "%s: %s", fixture, verify);
    free(verify);
    test_rmtree(dir);
    free(rules);
    free(out);
    free(src);
    free(dir);
}

START_TEST(module_weights_are_the_originals)
{
    convert_to_original("moe/deepseek_v3_deepspeed", "moe/deepseek_v3/model.safetensors", "module");
    convert_to_original("moe/qwen3_moe_deepspeed", "moe/qwen3_moe/model.safetensors", "module");
}
END_TEST

/* Experts under the MoE module their key names, whatever layer number the file gives (L is the MoE ordinal). */
START_TEST(experts_placed_by_their_key)
{
    char *path = test_testdata("moe/deepseek_v3_deepspeed");
    ckpt_open_options o;
    ckpt_open_options_default(&o);
    o.deepspeed_weights = CKPT_DEEPSPEED_MODULE;
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open_ext(&src, path, &o, &err), CKPT_OK);
    size_t at;
    const char *name = "model.layers.2.mlp.moe.deepspeed_moe.experts.deepspeed_experts.7.down_proj.weight";
    ck_assert_msg(ckpt_source_find(src, name, &at) == CKPT_OK, "no %s", name);
    const char *file = ckpt_source_file_path(src, ckpt_source_tensor(src, at)->file);
    ck_assert_msg(strstr(file, "layer_0_expert_7_mp_rank_00_model_states.pt"), "%s", file);
    ck_assert_str_eq(ckpt_source_metadata_value(src, "deepspeed.moe_layers"), "4");
    ck_assert_str_eq(ckpt_source_metadata_value(src, "deepspeed.num_experts"), "8");
    ckpt_source_free(src);
    free(path);
}
END_TEST

/* `ckpt inspect --deepspeed-weights module PATH` (or without it) exits 3 naming every needle. */
static void expect_refused(const char *path, bool module, const char *const *needles, size_t n)
{
    char *errout = NULL;
    ck_assert_int_eq(test_ckpt(NULL, &errout, "inspect '%s'%s", path, module ? " --deepspeed-weights module" : ""), 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strstr(errout, needles[i]), "'%s' not in: %s", needles[i], errout);
    free(errout);
}

/* The fp32 weights: the dense groups rebuilt from the ZeRO partitions, the experts their 16-bit files. */
START_TEST(fp32_dense_groups_rebuilt)
{
    char *path = test_testdata("moe/deepseek_v3_deepspeed");
    ckpt_source *src = test_open(path);
    static const struct {
        const char *name;
        ckpt_dtype dtype;
        const char *file;
    } want[] = {
        {"model.layers.3.mlp.shared_experts.up_proj.weight", CKPT_DTYPE_F32, "_optim_states.pt"},
        {"model.layers.3.mlp.moe.deepspeed_moe.gate.wg.weight", CKPT_DTYPE_F32, "_optim_states.pt"},
        {"model.layers.3.mlp.moe.deepspeed_moe.experts.deepspeed_experts.6.up_proj.weight", CKPT_DTYPE_BF16,
         "layer_1_expert_6_mp_rank_00_model_states.pt"},
        {"model.layers.3.mlp.moe.deepspeed_moe.gate.e_score_correction_bias", CKPT_DTYPE_F32,
         "mp_rank_00_model_states.pt"},   /* a buffer, as stored */
    };
    for (size_t i = 0; i < COUNT(want); i++) {
        size_t at;
        ck_assert_msg(ckpt_source_find(src, want[i].name, &at) == CKPT_OK, "no %s", want[i].name);
        const ckpt_tensor *t = ckpt_source_tensor(src, at);
        ck_assert_msg(t->dtype == want[i].dtype, "%s: %s", want[i].name, ckpt_dtype_name(t->dtype));
        ck_assert_msg(strstr(ckpt_source_file_path(src, t->file), want[i].file), "%s: %s", want[i].name,
                      ckpt_source_file_path(src, t->file));
    }
    ck_assert_str_eq(ckpt_source_metadata_value(src, "deepspeed.weights"), "fp32");
    ck_assert_msg(strstr(ckpt_source_metadata_value(src, "deepspeed.expert_weights"), "module (16-bit)"), "%s",
                  ckpt_source_metadata_value(src, "deepspeed.expert_weights"));
    ckpt_source_free(src);
    /* the fp32 masters are the module weights widened: cast back, the originals again */
    convert_to_original("moe/deepseek_v3_deepspeed", "moe/deepseek_v3/model.safetensors", "fp32");
    convert_to_original("moe/qwen3_moe_deepspeed", "moe/qwen3_moe/model.safetensors", "fp32");
    free(path);
}
END_TEST

START_TEST(damaged_expert_files_refused)
{
    char *tmp = test_tmpdir(), *good = test_testdata("moe/deepseek_v3_deepspeed");
    char *misplaced = test_testdata("moe/deepspeed_refused/misplaced_expert");
    const char *const wrong_id[] = {"layer_1_expert_3_mp_rank_00_model_states.pt",
                                    "deepspeed_experts.4.gate_proj.weight is expert 4's",
                                    "named for expert 3"};
    expect_refused(misplaced, true, wrong_id, COUNT(wrong_id));
    static const struct {
        const char *damage, *needles[3];
        bool fp32;   /* opened with the fp32 weights (the module weights otherwise) */
    } cases[] = {
        {"rm layer_2_expert_5_mp_rank_00_model_states.pt",
         {"layer_2_expert_5_mp_rank_00_model_states.pt: missing", "expert 5 of 8 of model.layers.4.mlp.moe"}, false},
        {"cp layer_0_expert_0_mp_rank_00_model_states.pt layer_0_expert_0_mp_rank_01_model_states.pt",
         {"layer_0_expert_0_mp_rank_01_model_states.pt", "tensor-parallel DeepSpeed MoE checkpoint"}, false},
        {"for e in 0 1 2 3 4 5 6 7; do cp layer_2_expert_${e}_mp_rank_00_model_states.pt "
         "layer_3_expert_${e}_mp_rank_00_model_states.pt; done",
         {"layer_3_expert_0_mp_rank_00_model_states.pt", "is not under model.layers.5.mlp.moe",
          "MoE layer 3's module"}, false},
        {"cp layer_0_expert_0_mp_rank_00_model_states.pt layer_0_expert_8_mp_rank_00_model_states.pt",
         {"layer_0_expert_8_mp_rank_00_model_states.pt", "expert 8, but router", "has 8"}, false},
        {"cp layer_0_expert_0_mp_rank_00_model_states.pt layer_4_expert_0_mp_rank_00_model_states.pt",
         {"layer_4_expert_0_mp_rank_00_model_states.pt", "MoE layer 4, but", "routers for 4"}, false},
        {"cp layer_0_expert_0_mp_rank_00_model_states.pt expert_0_mp_rank_00_model_states.pt",
         {"expert_0_mp_rank_00_model_states.pt", "DeepSpeed before 0.6"}, false},
        {"mv mp_rank_00_model_states.pt zero_pp_rank_0_mp_rank_00_model_states.pt",
         {"beside ZeRO-3 model states", "refuses native MoE with ZeRO stage 3"}, true},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char cmd[8192], *copy = test_join(tmp, "ckpt");
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cd '%s/global_step10' && %s", good, copy, copy,
                 cases[i].damage);
        ck_assert_msg(system(cmd) == 0, "%s", cmd);
        size_t k = 0;
        while (k < 3 && cases[i].needles[k])
            k++;
        expect_refused(copy, !cases[i].fp32, cases[i].needles, k);
        test_rmtree(copy);
        free(copy);
    }
    test_rmtree(tmp);
    free(misplaced);
    free(good);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deepspeed_moe");
    TCase *tc = tcase_create("deepspeed_moe");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, module_weights_are_the_originals);
    tcase_add_test(tc, experts_placed_by_their_key);
    tcase_add_test(tc, fp32_dense_groups_rebuilt);
    tcase_add_test(tc, damaged_expert_files_refused);
    suite_add_tcase(s, tc);
    return test_main(s);
}
