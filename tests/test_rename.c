/*
 * test_rename.c: `ckpt convert --rename hf-llama` end to end on
 * testdata/rename (make_rename.py): a Llama model in Hugging Face names, and
 * the same weights as Megatron-LM stores them (fused GQA QKV, [gate; up]
 * fc1, padded vocabulary, non-weights), built independently with torch.
 *
 * Converting the Megatron file with the rename must give exactly the
 * tensors (names, types, stored shapes, bytes) that converting the HF model
 * gives, for an NZ target and for nd (where they are the HF originals).
 */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every tensor of `a` is in `b` with the same type, stored shape and bytes, and the counts agree. */
static void check_same_tensors(const char *a_path, const char *b_path)
{
    ckpt_source *a = test_open(a_path), *b = test_open(b_path);
    ck_assert_uint_eq(ckpt_source_tensor_count(a), ckpt_source_tensor_count(b));
    for (size_t i = 0; i < ckpt_source_tensor_count(a); i++) {
        const ckpt_tensor *ta = ckpt_source_tensor(a, i), *tb;
        uint8_t *da = test_read_tensor(a, ta->name, &ta), *db = test_read_tensor(b, ta->name, &tb);
        ck_assert_msg(ta->dtype == tb->dtype && ta->rank == tb->rank && ta->nbytes == tb->nbytes, "%s: type or shape",
                      ta->name);
        ck_assert_msg(memcmp(ta->shape, tb->shape, ta->rank * sizeof *ta->shape) == 0, "%s: shape", ta->name);
        ck_assert_msg(memcmp(da, db, ta->nbytes) == 0, "%s: bytes differ between %s and %s", ta->name, a_path, b_path);
        free(da);
        free(db);
    }
    ckpt_source_free(a);
    ckpt_source_free(b);
}

static void convert(const char *src, const char *dst, const char *options)
{
    char *err = NULL;
    int status = test_ckpt(NULL, &err, "convert '%s' '%s' --quiet %s", src, dst, options);
    ck_assert_msg(status == 0, "convert %s %s: %s", src, options, err);
    free(err);
}

static void check_renamed_as(const char *megatron_name, const char *hf_name, const char *set, const char *target)
{
    char *dir = test_tmpdir(), *megatron = test_testdata(megatron_name), *hf = test_testdata(hf_name);
    char *renamed = test_join(dir, "renamed"), *direct = test_join(dir, "direct"), options[64];
    snprintf(options, sizeof options, "--target %s --rename %s", target, set);
    convert(megatron, renamed, options);
    snprintf(options, sizeof options, "--target %s", target);
    convert(hf, direct, options);
    check_same_tensors(renamed, direct);
    if (strcmp(target, "nd") == 0)
        check_same_tensors(renamed, hf);
    char *out = NULL;
    ck_assert_int_eq(test_ckpt(&out, NULL, "verify '%s' --against '%s'", renamed, megatron), 0);
    free(out);
    test_rmtree(dir);
    free(renamed);
    free(direct);
    free(megatron);
    free(hf);
    free(dir);
}

static void check_renamed(const char *megatron_name, const char *target)
{
    check_renamed_as(megatron_name, "rename/hf", "hf-llama", target);
}

START_TEST(megatron_core_names_310p)
{
    check_renamed("rename/megatron.safetensors", "ascend-310p");
}
END_TEST

START_TEST(megatron_core_names_nd)
{
    check_renamed("rename/megatron.safetensors", "nd");
}
END_TEST

START_TEST(legacy_names_310p)
{
    check_renamed("rename/megatron_legacy.safetensors", "ascend-310p");
}
END_TEST

/* Legacy names written since Megatron-LM 4dc07152: input_norm, post_attention_norm, final_norm. */
START_TEST(legacy_norm_names)
{
    check_renamed_as("rename/megatron_legacy_norms.safetensors", "rename/hf", "hf", "nd");
}
END_TEST

/* q/k norms in the args make it Qwen3: self_attention.q_layernorm becomes self_attn.q_norm. */
START_TEST(qwen3_from_qk_layernorm)
{
    check_renamed_as("rename/megatron_qwen3.safetensors", "rename/hf_qwen3", "hf", "nd");
    check_renamed_as("rename/megatron_qwen3.safetensors", "rename/hf_qwen3", "hf", "ascend-910b");
}
END_TEST

/* config.json made from the megatron.* metadata says what the HF model's own config says. */
static void check_config(const char *megatron_name, const char *config_name, const char *set)
{
    char *dir = test_tmpdir(), *megatron = test_testdata(megatron_name), options[64];
    char *hf_config = test_testdata(config_name), *dst = test_join(dir, "out");
    snprintf(options, sizeof options, "--target ascend-310p --rename %s", set);
    convert(megatron, dst, options);
    char *made_path = test_join(dst, "config.json");
    json_t *made = json_load_file(made_path, 0, NULL), *want = json_load_file(hf_config, 0, NULL);
    ck_assert_ptr_nonnull(made);
    ck_assert_ptr_nonnull(want);
    const char *key;
    json_t *value;
    json_object_foreach(want, key, value) {
        if (strcmp(key, "torch_dtype") == 0)
            continue;
        ck_assert_msg(json_equal(json_object_get(made, key), value), "config.json %s differs", key);
    }
    ck_assert_str_eq(json_string_value(json_object_get(made, "torch_dtype")), "float16");
    json_decref(made);
    json_decref(want);
    test_rmtree(dir);
    free(made_path);
    free(dst);
    free(hf_config);
    free(megatron);
    free(dir);
}

START_TEST(config_made_from_metadata)
{
    check_config("rename/megatron.safetensors", "rename/hf/config.json", "hf-llama");
    check_config("rename/megatron.safetensors", "rename/hf/config.json", "hf");
    check_config("rename/megatron_qwen3.safetensors", "rename/hf_qwen3/config.json", "hf");
}
END_TEST

/* Rewrites DST/ckpt-manifest.json through `edit`. */
static void edit_manifest(const char *dst, void (*edit)(json_t *))
{
    char *path = test_join(dst, "ckpt-manifest.json");
    json_t *m = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(m);
    edit(m);
    ck_assert_int_eq(json_dump_file(m, path, JSON_INDENT(1)), 0);
    json_decref(m);
    free(path);
}

static void shift_q_rows(json_t *m)
{
    json_t *tensors = json_object_get(m, "tensors"), *t;
    size_t i;
    json_array_foreach(tensors, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), "model.layers.1.self_attn.q_proj.weight") == 0)
            json_object_set_new(json_object_get(json_object_get(t, "source"), "rows"), "offset", json_integer(8));
    }
}

static void drop_rename_option(json_t *m)
{
    json_object_del(json_object_get(m, "options"), "rename");
}

START_TEST(verify_checks_recorded_rows)
{
    char *dir = test_tmpdir(), *megatron = test_testdata("rename/megatron.safetensors");
    char *hf = test_testdata("rename/hf"), *renamed = test_join(dir, "renamed"), *plain = test_join(dir, "plain");
    convert(megatron, renamed, "--target nd --rename hf-llama");
    edit_manifest(renamed, shift_q_rows);
    char *out = NULL;
    ck_assert_int_eq(test_ckpt(&out, NULL, "verify '%s' --against '%s'", renamed, megatron), 1);
    ck_assert_msg(strstr(out, "q_proj") && strstr(out, "other source rows"), "%s", out);
    free(out);
    /* a manifest written before rename sets has no rename option: it still verifies */
    convert(hf, plain, "--target ascend-310p");
    edit_manifest(plain, drop_rename_option);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", plain, hf), 0);
    test_rmtree(dir);
    free(renamed);
    free(plain);
    free(hf);
    free(megatron);
    free(dir);
}
END_TEST

START_TEST(bad_rules_and_sets_refused)
{
    char *dir = test_tmpdir(), *megatron = test_testdata("rename/megatron.safetensors");
    char *rules = test_join(dir, "bad.rules"), *err = NULL;
    const char *missing = "# a key the source does not have\nembedding.word_embeddings.weight rows=${megatron.nope}\n";
    test_write_file(rules, missing, strlen(missing));
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target nd --rules '%s'", megatron, dir, rules), 3);
    ck_assert_msg(strstr(err, "bad.rules:2") && strstr(err, "megatron.nope"), "%s", err);
    free(err);
    const char *uneven = "decoder.layers.*.self_attention.linear_proj.weight split=3:2 rename=a$1,b$1\n";
    test_write_file(rules, uneven, strlen(uneven));
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target nd --rules '%s'", megatron, dir, rules), 3);
    ck_assert_msg(strstr(err, "bad.rules:1") && strstr(err, "do not divide"), "%s", err);
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/o' --rename hf-mistery", megatron, dir), 2);
    /* a Megatron model without SwiGLU has no Llama form */
    static const uint64_t shape[2] = {2, 2};
    static const float zeros[4] = {0};
    ckpt_tensor t = {"decoder.layers.0.mlp.linear_fc1.weight", CKPT_DTYPE_F32, 2, shape, sizeof zeros, 0, NULL};
    ckpt_kv meta = {"megatron.swiglu", "false"};
    char *gelu = test_join(dir, "gelu.safetensors");
    ckpt_writer *w = NULL;
    ckpt_error e = {0};
    ck_assert_int_eq(ckpt_writer_open(&w, gelu, &t, 1, &meta, 1, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, zeros, sizeof zeros, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, &e), CKPT_OK);
    ckpt_writer_free(w);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target nd --rename hf-llama", gelu, dir), 3);
    ck_assert_msg(strstr(err, "gelu.safetensors") && strstr(err, "megatron.swiglu"), "%s", err);
    free(err);
    free(gelu);
    /* a shared-expert gate (Qwen2-MoE) has no name in these architectures: refused rather than written under its
     * Megatron name, unless a rule drops it */
    ckpt_tensor two[2] = {{"decoder.layers.0.mlp.linear_fc2.weight", CKPT_DTYPE_F32, 2, shape, sizeof zeros, 0, NULL},
                          {"decoder.layers.0.mlp.shared_experts.gate_weight", CKPT_DTYPE_F32, 1, shape, 8, 0, NULL}};
    char *qk = test_join(dir, "qk.safetensors");
    ck_assert_int_eq(ckpt_writer_open(&w, qk, two, 2, NULL, 0, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, zeros, sizeof zeros, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, zeros, 8, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, &e), CKPT_OK);
    ckpt_writer_free(w);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target nd --rename hf-llama", qk, dir), 3);
    ck_assert_msg(strstr(err, "qk.safetensors: rename set hf-llama has no name for "
                              "decoder.layers.0.mlp.shared_experts.gate_weight"), "%s", err);
    free(err);
    const char *drop = "*.gate_weight drop\n";
    test_write_file(rules, drop, strlen(drop));
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/o' --target nd --rename hf-llama --rules '%s' --quiet",
                               qk, dir, rules), 0);
    char *o = test_join(dir, "o");
    test_rmtree(o);
    free(o);
    free(qk);
    ck_assert_uint_eq(test_count_entries(dir), 3);   /* the inputs only: nothing was written */
    test_rmtree(dir);
    free(rules);
    free(megatron);
    free(dir);
}
END_TEST

/* The library call: ckpt_convert_options.rename, and the rows each entry takes (heads of 8 rows, 2 groups). */
START_TEST(library_plan_rows)
{
    char *megatron = test_testdata("rename/megatron.safetensors");
    ckpt_source *src = test_open(megatron);
    ckpt_convert_options opts;
    ckpt_convert_options_default(&opts);
    opts.target = CKPT_TARGET_ND;
    opts.rename = "hf-llama";
    ckpt_plan *plan = NULL;
    ckpt_error err = {0};
    ck_assert_msg(ckpt_plan_build(&plan, src, "unused", &opts, &err) == CKPT_OK, "%s", err.message);
    static const struct {
        const char *name;
        ckpt_row_select rows;
    } want[] = {
        {"model.embed_tokens.weight", {1, 60, 0, 60}},
        {"model.layers.1.self_attn.q_proj.weight", {2, 32, 0, 16}},
        {"model.layers.1.self_attn.k_proj.weight", {2, 32, 16, 8}},
        {"model.layers.1.self_attn.v_proj.weight", {2, 32, 24, 8}},
        {"model.layers.1.mlp.up_proj.weight", {1, 96, 48, 48}},
        {"model.layers.1.mlp.down_proj.weight", {0, 0, 0, 0}},
        {"lm_head.weight", {1, 60, 0, 60}},
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        const ckpt_plan_entry *e = NULL;
        for (size_t i = 0; i < ckpt_plan_entry_count(plan) && !e; i++)
            if (strcmp(ckpt_plan_entry_at(plan, i)->name, want[w].name) == 0)
                e = ckpt_plan_entry_at(plan, i);
        ck_assert_msg(e != NULL, "no %s", want[w].name);
        ck_assert_msg(memcmp(&e->rows, &want[w].rows, sizeof e->rows) == 0, "%s: rows %llu %llu %llu %llu",
                      want[w].name, (unsigned long long)e->rows.groups, (unsigned long long)e->rows.group_rows,
                      (unsigned long long)e->rows.offset, (unsigned long long)e->rows.count);
    }
    ck_assert_uint_eq(ckpt_plan_entry_count(plan), 21);
    ck_assert_uint_eq(ckpt_plan_dropped_count(plan), 3);   /* inv_freq and two _extra_state */
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    free(megatron);
}
END_TEST

static Suite *rename_suite(void)
{
    Suite *s = suite_create("rename");
    TCase *tc = tcase_create("hf-llama");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, megatron_core_names_310p);
    tcase_add_test(tc, megatron_core_names_nd);
    tcase_add_test(tc, legacy_names_310p);
    tcase_add_test(tc, legacy_norm_names);
    tcase_add_test(tc, qwen3_from_qk_layernorm);
    tcase_add_test(tc, config_made_from_metadata);
    tcase_add_test(tc, verify_checks_recorded_rows);
    tcase_add_test(tc, bad_rules_and_sets_refused);
    tcase_add_test(tc, library_plan_rows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(rename_suite());
}
