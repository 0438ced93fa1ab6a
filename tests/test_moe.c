/*
 * test_moe.c: Mixture-of-Experts and MLA checkpoints from Megatron-LM, made
 * by testdata/moe (make_moe_models.py: a tiny DeepSeek-V3-like and a tiny
 * Qwen3-MoE-like Hugging Face model; make_legacy.py and make_torch_dist.py:
 * the same full tensors cut as each Megatron layout holds them, following
 * the Megatron-LM code each fixture script cites).
 *
 * Every layout must read back as the same tensors (legacy SequentialMLP,
 * TEGroupedMLP and GroupedMLP files over a TP=2 x EP=2 or a sparse TP=2 x
 * EP=4, ETP=1 grid with uneven pipeline stages, PP=2 counting the embedding
 * as a layer; torch_dist with per-layer or stacked experts; NeMo 2), and
 * `--rename hf` must give back the Hugging Face originals bit for bit, with
 * a config.json that says what they are.
 * Each refusal names the file and the reason.
 */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const deepseek_v3[] = {"moe/deepseek_v3_seq", "moe/deepseek_v3_te", "moe/deepseek_v3_grouped",
                                          "moe/deepseek_v3_dist"};
static const char *const qwen3_moe[] = {"moe/qwen3_moe_te", "moe/qwen3_moe_pp2", "moe/qwen3_moe_dist",
                                        "moe/qwen3_moe_nemo2"};

#define COUNT(a) (sizeof a / sizeof a[0])

/* `ckpt diff A B` finds no difference between two sources (any formats, all tensors and their bytes). */
static void expect_same(const char *a_rel, const char *b_rel)
{
    char *a = test_testdata(a_rel), *b = test_testdata(b_rel), *out = NULL;
    int status = test_ckpt(&out, NULL, "diff '%s' '%s'", a, b);
    ck_assert_msg(status == 0, "%s and %s differ: %s", a_rel, b_rel, out);
    free(out);
    free(a);
    free(b);
}

START_TEST(every_layout_reads_the_same_tensors)
{
    for (size_t i = 1; i < COUNT(deepseek_v3); i++)
        expect_same(deepseek_v3[0], deepseek_v3[i]);
    for (size_t i = 1; i < COUNT(qwen3_moe); i++)
        expect_same(qwen3_moe[0], qwen3_moe[i]);
}
END_TEST

/* Experts under their global index, the MTP layer under transformer_layer, whatever the file called them. */
START_TEST(names_and_shapes)
{
    static const struct {
        const char *name;
        uint32_t rank;
        uint64_t shape[2];
    } want[] = {
        {"decoder.layers.4.mlp.experts.local_experts.7.linear_fc1.weight", 2, {40, 48}},   /* [gate 20; up 20] */
        {"decoder.layers.4.mlp.experts.local_experts.7.linear_fc2.weight", 2, {48, 20}},
        {"decoder.layers.2.mlp.shared_experts.linear_fc1.weight", 2, {80, 48}},
        {"decoder.layers.2.mlp.router.expert_bias", 1, {8}},
        {"decoder.layers.0.mlp.linear_fc1.weight", 2, {112, 48}},
        {"decoder.layers.3.self_attention.linear_q_down_proj.weight", 2, {24, 48}},
        {"decoder.layers.3.self_attention.linear_kv_down_proj.weight", 2, {16, 48}},
        {"mtp.layers.0.transformer_layer.mlp.experts.local_experts.0.linear_fc1.weight", 2, {40, 48}},
        {"mtp.layers.0.eh_proj.weight", 2, {48, 96}},
        {"embedding.word_embeddings.weight", 2, {128, 48}},
    };
    for (size_t f = 0; f < COUNT(deepseek_v3); f++) {
        char *path = test_testdata(deepseek_v3[f]);
        ckpt_source *src = test_open(path);
        for (size_t i = 0; i < COUNT(want); i++) {
            size_t at;
            ck_assert_msg(ckpt_source_find(src, want[i].name, &at) == CKPT_OK, "%s: no %s", path, want[i].name);
            const ckpt_tensor *t = ckpt_source_tensor(src, at);
            ck_assert_uint_eq(t->rank, want[i].rank);
            ck_assert_mem_eq(t->shape, want[i].shape, t->rank * sizeof *t->shape);
        }
        ck_assert_str_eq(ckpt_source_metadata_value(src, "megatron.moe_layers"), "00111");
        ck_assert_str_eq(ckpt_source_metadata_value(src, "megatron.num_experts"), "8");
        ck_assert_str_eq(ckpt_source_metadata_value(src, "megatron.qk_head_dim"), "12");
        ck_assert_str_eq(ckpt_source_metadata_value(src, "megatron.multi_latent_attention"), "true");
        ckpt_source_free(src);
        free(path);
    }
}
END_TEST

/* config.json holds every key `want` does, with its value (numbers compared as numbers). */
static void expect_config(const char *dir, const char *want_rel)
{
    char *path = test_join(dir, "config.json"), *want_path = test_testdata(want_rel);
    json_error_t jerr;
    json_t *got = json_load_file(path, 0, &jerr), *want = json_load_file(want_path, 0, &jerr);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(want);
    static const char *const keys[] = {
        "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta",
        "tie_word_embeddings", "moe_intermediate_size", "num_experts_per_tok", "n_routed_experts", "n_shared_experts",
        "first_k_dense_replace", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
        "n_group", "topk_group", "routed_scaling_factor", "scoring_func", "topk_method", "norm_topk_prob",
        "num_nextn_predict_layers", "head_dim", "num_experts", "decoder_sparse_step", "mlp_only_layers",
        "rope_scaling", "architectures", "torch_dtype",
    };
    for (size_t i = 0; i < COUNT(keys); i++) {
        json_t *w = json_object_get(want, keys[i]), *g = json_object_get(got, keys[i]);
        if (!w)
            continue;
        ck_assert_msg(g, "%s: no %s", path, keys[i]);
        ck_assert_msg(json_equal(w, g) || (json_is_number(w) && json_is_number(g) &&
                                           json_number_value(w) == json_number_value(g)) ||
                          (json_is_object(w) && json_is_object(g)),
                      "%s: %s differs", path, keys[i]);
    }
    json_t *ws = json_object_get(want, "rope_scaling"), *gs = json_object_get(got, "rope_scaling");
    const char *k;
    json_t *v;
    json_object_foreach(ws, k, v) {
        json_t *g = json_object_get(gs, k);
        ck_assert_msg(g && (json_equal(v, g) || json_number_value(v) == json_number_value(g)), "rope_scaling.%s", k);
    }
    json_decref(got);
    json_decref(want);
    free(path);
    free(want_path);
}

/*
 * SRC converted with `--rename hf` and `target` gives the same tensors as the Hugging Face original
 * converted with the same target, which for nd are the original's own; it verifies against SRC.
 */
static void check_renamed(const char *src_rel, const char *hf_rel, const char *target)
{
    char *dir = test_tmpdir(), *src = test_testdata(src_rel), *hf = test_testdata(hf_rel);
    char *renamed = test_join(dir, "renamed"), *direct = test_join(dir, "direct"), *err = NULL;
    int status = test_ckpt(NULL, &err, "convert '%s' '%s' --quiet --target %s --rename hf", src, renamed, target);
    ck_assert_msg(status == 0, "%s: %s", src_rel, err);
    free(err);
    /* DeepSeek keeps the router bias in F32, whatever the target does to other F32 tensors */
    char *keep = test_join(dir, "keep.rules");
    test_write_file(keep, "*.e_score_correction_bias dtype=f32\n", 36);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s' --quiet --target %s --rules '%s'", hf, direct, target,
                               keep), 0);
    free(keep);
    ckpt_source *out = test_open(renamed);
    char label[256];
    snprintf(label, sizeof label, "%s --rename hf --target %s", src_rel, target);
    if (strcmp(target, "nd") == 0) {
        char golden[256];
        snprintf(golden, sizeof golden, "%s/model.safetensors", hf_rel);
        test_expect_golden(out, label, golden);
    }
    ckpt_source_free(out);
    char *diff = NULL;
    ck_assert_msg(test_ckpt(&diff, NULL, "diff '%s' '%s'", renamed, direct) == 0, "%s: %s", label, diff);
    free(diff);
    char hf_config[256];
    snprintf(hf_config, sizeof hf_config, "%s/config.json", hf_rel);
    expect_config(renamed, hf_config);
    char *verify = NULL;
    ck_assert_msg(test_ckpt(&verify, NULL, "verify '%s' --against '%s'", renamed, src) == 0, "%s: %s", label, verify);
    free(verify);
    test_rmtree(dir);
    free(renamed);
    free(direct);
    free(src);
    free(hf);
    free(dir);
}

START_TEST(deepseek_v3_renamed_to_the_original)
{
    for (size_t i = 0; i < COUNT(deepseek_v3); i++)
        check_renamed(deepseek_v3[i], "moe/deepseek_v3", "nd");
    check_renamed("moe/deepseek_v3_grouped", "moe/deepseek_v3", "ascend-910b");
}
END_TEST

START_TEST(qwen3_moe_renamed_to_the_original)
{
    for (size_t i = 0; i < COUNT(qwen3_moe); i++)
        check_renamed(qwen3_moe[i], "moe/qwen3_moe", "nd");
    check_renamed("moe/qwen3_moe_dist", "moe/qwen3_moe", "ascend-910b");
}
END_TEST

/* `ckpt inspect PATH` exits with `status` and every needle in its message. */
static void expect_refused(const char *path, int status, const char *const *needles, size_t n)
{
    char *errout = NULL;
    ck_assert_int_eq(test_ckpt(NULL, &errout, "inspect '%s'", path), status);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strstr(errout, needles[i]), "'%s' not in: %s", needles[i], errout);
    free(errout);
}

START_TEST(refusals_name_the_file_and_the_reason)
{
    static const struct {
        const char *fixture, *needles[3];
    } cases[] = {
        {"moe/refused/extended_tp", {"mp_rank_00_000/model_optim_rng.pt", "moe_extended_tp = True", "not supported"}},
        {"moe/refused/glu_interleave", {"mp_rank_00_000/model_optim_rng.pt", "moe_mlp_glu_interleave_size = 16"}},
        {"moe/refused/single_grouped_weight", {"moe_single_grouped_weight = True", "GroupedTensor"}},
        {"moe/refused/pipeline_layout", {"mp_rank_00_000_000/model_optim_rng.pt", "pipeline layout"}},
        {"moe/refused/uneven_overflow",
         {"5 layers do not fit 2 pipeline stages", "decoder_first_pipeline_num_layers 6"}},
        {"moe/refused/two_shards_one_file", {"mp_rank_00/model_optim_rng.pt", "ETP 4",
                                             "legacy format cannot hold this layout"}},
        {"moe/refused/fp8_weights", {"mp_rank_00_000/model_optim_rng.pt", "Float8Tensor", "--fp8-param-gather"}},
        {"moe/deepseek_v3_incomplete", {"iter_0000010", "tensor-parallel rank 2", "before 0.18"}},
        {"moe/refused/singleton_flag", {"singleton_flag/common.pt", "singleton_local_shards is True"}},
        {"moe/refused/singleton_keys", {"experts.experts.3.linear_fc1.weight_w", "singleton_local_shards"}},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        char *path = test_testdata(cases[i].fixture);
        size_t n = 0;
        while (n < 3 && cases[i].needles[n])
            n++;
        expect_refused(path, 3, cases[i].needles, n);
        free(path);
    }
}
END_TEST

/* Copies of a real folder with one defect each. */
START_TEST(damaged_folders_refused)
{
    char *tmp = test_tmpdir(), *grouped = test_testdata("moe/deepseek_v3_grouped");
    char *seq = test_testdata("moe/deepseek_v3_seq");
    char cmd[8192], *copy = test_join(tmp, "ckpt");
    /* the sparse grid's only file of expert rank 3 on the last stage */
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && rm -r '%s/iter_0000010/mp_rank_01_001_003'", grouped, copy, copy);
    ck_assert_int_eq(system(cmd), 0);
    const char *const expert[] = {"no file holds expert rank 3's expert-TP shard 0 (stage 1)"};
    expect_refused(copy, 3, expert, 1);
    test_rmtree(copy);
    /* rank 0 found as mp_rank_00 while the args say expert-parallel */
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && mv '%s/iter_0000010/mp_rank_00_000' '%s/iter_0000010/mp_rank_00'",
             seq, copy, copy, copy);
    ck_assert_int_eq(system(cmd), 0);
    const char *const naming[] = {"mp_rank_00/model_optim_rng.pt", "expert-parallel size 2",
                                  "the folder name says otherwise"};
    expect_refused(copy, 3, naming, 3);
    test_rmtree(copy);
    /* stage 0's file of (tp 1, ep 3) in place of stage 1's: its layers are not the stage's */
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cp '%s/iter_0000010/mp_rank_01_000_003/model_optim_rng.pt' "
             "'%s/iter_0000010/mp_rank_01_001_003/model_optim_rng.pt'", grouped, copy, copy, copy);
    ck_assert_int_eq(system(cmd), 0);
    char *errout = NULL;
    ck_assert_int_eq(test_ckpt(NULL, &errout, "inspect '%s'", copy), 3);
    ck_assert_msg(strstr(errout, "mp_rank_01_001_003/model_optim_rng.pt"), "%s", errout);
    free(errout);
    test_rmtree(tmp);
    free(copy);
    free(grouped);
    free(seq);
    free(tmp);
}
END_TEST

/* Transformer Engine < 2.0's _extra_state, an io.BytesIO of a torch.save: an object of its bytes, never opened. */
START_TEST(te_extra_state_recorded_not_opened)
{
    char *path = test_testdata("moe/deepseek_v3_grouped/iter_0000010/mp_rank_00_000_000/model_optim_rng.pt");
    ckpt_source *src = test_open(path);
    const char *want = "model.decoder.layers.0.self_attention.linear_proj._extra_state";
    size_t i = 0;
    while (i < ckpt_source_object_count(src) && strcmp(ckpt_source_object(src, i)->name, want) != 0)
        i++;
    ck_assert_msg(i < ckpt_source_object_count(src), "no object %s", want);
    ck_assert_str_eq(ckpt_source_object(src, i)->kind, "bytes");
    ck_assert_msg(strstr(ckpt_source_object(src, i)->value, "bytes in an io.BytesIO, not read"), "%s",
                  ckpt_source_object(src, i)->value);
    ckpt_source_free(src);
    free(path);
}
END_TEST

/* hf-llama stays Llama's: a DeepSeek-V3 checkpoint is refused naming the set to use. */
START_TEST(hf_llama_refuses_other_architectures)
{
    char *src = test_testdata("moe/deepseek_v3_dist"), *tmp = test_tmpdir(), *err = NULL;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --quiet --target nd --rename hf-llama", src, tmp), 3);
    ck_assert_msg(strstr(err, "is DeepSeek-V3: use the rename set hf"), "%s", err);
    free(err);
    ck_assert_uint_eq(test_count_entries(tmp), 0);
    test_rmtree(tmp);
    free(tmp);
    free(src);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("moe");
    TCase *tc = tcase_create("moe");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_layout_reads_the_same_tensors);
    tcase_add_test(tc, names_and_shapes);
    tcase_add_test(tc, deepseek_v3_renamed_to_the_original);
    tcase_add_test(tc, qwen3_moe_renamed_to_the_original);
    tcase_add_test(tc, refusals_name_the_file_and_the_reason);
    tcase_add_test(tc, damaged_folders_refused);
    tcase_add_test(tc, te_extra_state_recorded_not_opened);
    tcase_add_test(tc, hf_llama_refuses_other_architectures);
    suite_add_tcase(s, tc);
    return test_main(s);
}
