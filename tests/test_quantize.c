/*
 * test_quantize.c: the choices convert makes around the int8 quantizer and
 * the targets, on small sources written here: the type a weight is
 * quantized in (config.json's torch_dtype, else its own), the order of the
 * rules (the rules file refines --nz and --quant), the float32 list against
 * --dtype, refusals (a NaN weight, bf16 on 310P), and the plan entries a
 * library caller sees.  The codes themselves are proven against torch in
 * test_quant.c and tests/contracts.sh; here the reference is the public
 * kernels applied by hand.
 */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 24, COLS = 40 };

/* DIR/NAME/ holding one shard of: a [ROWS, COLS] F32 projection, an F32 router bias, an F32 norm. */
static char *write_source(const char *dir, const char *name, const char *config, float poison)
{
    char *src = test_join(dir, name);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", src);
    ck_assert_int_eq(system(cmd), 0);
    static float w[ROWS * COLS], bias[8], norm[COLS];
    for (int k = 0; k < ROWS * COLS; k++)
        w[k] = (float)sin(k * 0.37) * (k % 7 == 0 ? 3.0f : 0.1f) + 1e-3f * (float)k;   /* f32 detail bf16 drops */
    w[5 * COLS + 3] = poison;
    for (int k = 0; k < 8; k++)
        bias[k] = 1.0f / 3.0f + (float)k;   /* not a bf16 or f16 value */
    for (int k = 0; k < COLS; k++)
        norm[k] = 1.0f + k / 64.0f;
    ckpt_tensor t[3] = {
        {"model.layers.0.self_attn.q_proj.weight", CKPT_DTYPE_F32, 2, (uint64_t[]){ROWS, COLS}, 0, 0, NULL},
        {"model.layers.0.mlp.gate.e_score_correction_bias", CKPT_DTYPE_F32, 1, (uint64_t[]){8}, 0, 0, NULL},
        {"model.norm.weight", CKPT_DTYPE_F32, 1, (uint64_t[]){COLS}, 0, 0, NULL},
    };
    char *shard = test_join(src, "model.safetensors");
    ckpt_writer *wr;
    ckpt_error err;
    ck_assert_int_eq(ckpt_writer_open(&wr, shard, t, 3, NULL, 0, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(wr, w, sizeof w, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(wr, bias, sizeof bias, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(wr, norm, sizeof norm, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(wr, &err), CKPT_OK);
    ckpt_writer_free(wr);
    free(shard);
    if (config) {
        char *path = test_join(src, "config.json");
        test_write_file(path, config, strlen(config));
        free(path);
    }
    return src;
}

/* The codes and scales of quantizing the source's weight, cast to `load` first, by the public kernels. */
static void reference(const char *src_path, ckpt_dtype load, int8_t *q, float *s)
{
    ckpt_source *src = test_open(src_path);
    uint8_t *w = test_read_tensor(src, "model.layers.0.self_attn.q_proj.weight", NULL);
    void *cast = malloc(ROWS * COLS * 4);
    ck_assert_int_eq(ckpt_cast(CKPT_DTYPE_F32, w, load, cast, ROWS * COLS, CKPT_OVERFLOW_SATURATE, NULL, NULL),
                     CKPT_OK);
    ck_assert_int_eq(ckpt_quantize_int8(load, cast, ROWS, COLS, q, s, NULL), CKPT_OK);
    free(cast);
    free(w);
    ckpt_source_free(src);
}

static void expect_quantized_in(const char *src_path, const char *dst, ckpt_dtype load)
{
    int8_t want_q[ROWS * COLS];
    float want_s[ROWS];
    reference(src_path, load, want_q, want_s);
    ckpt_source *out = test_open(dst);
    const ckpt_tensor *t;
    uint8_t *q = test_read_tensor(out, "model.layers.0.self_attn.q_proj.weight", &t);
    ck_assert_int_eq(t->dtype, CKPT_DTYPE_I8);
    ck_assert_mem_eq(q, want_q, sizeof want_q);
    uint8_t *s = test_read_tensor(out, "model.layers.0.self_attn.q_proj.weight_scale", &t);
    ck_assert_mem_eq(s, want_s, sizeof want_s);
    free(q);
    free(s);
    ckpt_source_free(out);
}

START_TEST(quantized_in_the_load_type)
{
    char *dir = test_tmpdir(), *err;
    /* no config.json: the weight's own type, f32 */
    char *plain = write_source(dir, "plain", NULL, 0.5f);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/a' --target ascend-910b --quant w8a16 --quiet", plain,
                               dir), 0);
    free(err);
    char *a = test_join(dir, "a");
    expect_quantized_in(plain, a, CKPT_DTYPE_F32);
    /* torch_dtype bfloat16: transformers loads the f32 weight as bf16, and msModelSlim quantizes that */
    char *cfg = write_source(dir, "cfg", "{\"model_type\": \"llama\", \"torch_dtype\": \"bfloat16\"}", 0.5f);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/b' --target ascend-310p --quant w8a8-dynamic --quiet",
                               cfg, dir), 0);
    free(err);
    char *b = test_join(dir, "b");
    expect_quantized_in(cfg, b, CKPT_DTYPE_BF16);
    /* and the two differ, or this test would prove nothing */
    int8_t q32[ROWS * COLS], q16[ROWS * COLS];
    float s32[ROWS], s16[ROWS];
    reference(plain, CKPT_DTYPE_F32, q32, s32);
    reference(plain, CKPT_DTYPE_BF16, q16, s16);
    ck_assert(memcmp(s32, s16, sizeof s32) != 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", b, cfg), 0);
    free(a);
    free(b);
    free(plain);
    free(cfg);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(float32_list_beats_dtype_rules_refine_options)
{
    char *dir = test_tmpdir(), *err;
    char *src = write_source(dir, "src", NULL, 0.5f);
    char *rules = test_join(dir, "r.rules");
    test_write_file(rules, "model.norm.weight layout=nd quant=w8a16\n", 40);
    /* --dtype f16 replaces the target's bf16 but not the routing bias's f32; the rules file wins over --nz all */
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target ascend-910b --dtype f16 --nz all --rules '%s' "
                               "--quiet", src, dir, rules), 0);
    free(err);
    char *o = test_join(dir, "o");
    ckpt_source *out = test_open(o);
    size_t i;
    ck_assert_int_eq(ckpt_source_find(out, "model.layers.0.mlp.gate.e_score_correction_bias", &i), CKPT_OK);
    ck_assert_int_eq(ckpt_source_tensor(out, i)->dtype, CKPT_DTYPE_F32);
    ck_assert_int_eq(ckpt_source_find(out, "model.layers.0.self_attn.q_proj.weight", &i), CKPT_OK);
    ck_assert_int_eq(ckpt_source_tensor(out, i)->dtype, CKPT_DTYPE_F16);
    ck_assert_int_eq(ckpt_source_tensor_storage(out, i)->layout, CKPT_LAYOUT_FRACTAL_NZ);
    /* quant= on a vector does nothing: only 2-D *.weight tensors are quantized */
    ck_assert_int_eq(ckpt_source_find(out, "model.norm.weight", &i), CKPT_OK);
    ck_assert_int_eq(ckpt_source_tensor(out, i)->dtype, CKPT_DTYPE_F16);
    ckpt_source_free(out);
    /* 310P has no bf16; a NaN has no int8 scale */
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/x' --target ascend-310p --dtype bf16", src, dir), 2);
    ck_assert_msg(strstr(err, "310P has no bf16"), "%s", err);
    free(err);
    char *nan_src = write_source(dir, "nan", NULL, NAN);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/y' --target ascend-910b --quant w8a8-dynamic", nan_src,
                               dir), 3);
    ck_assert_msg(strstr(err, "model.layers.0.self_attn.q_proj.weight: row 5 holds a NaN"), "%s", err);
    free(err);
    char *y = test_join(dir, "y");
    FILE *f = fopen(y, "r");
    ck_assert_ptr_null(f);   /* nothing left behind */
    free(y);
    free(nan_src);
    free(o);
    free(rules);
    free(src);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(library_sees_the_quantized_plan)
{
    char *dir = test_tmpdir();
    char *src_path = write_source(dir, "src", NULL, 0.5f), *dst = test_join(dir, "out");
    ckpt_source *src = test_open(src_path);
    ckpt_convert_options opts;
    ckpt_convert_options_default(&opts);
    ckpt_plan *plan;
    ckpt_error err;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, dst, &opts, &err), CKPT_ERR_ARG);   /* no target */
    ck_assert_msg(strstr(err.message, "no target"), "%s", err.message);
    opts.target = CKPT_TARGET_ASCEND_910B;
    opts.quant = CKPT_QUANT_W8A8_DYNAMIC;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, dst, &opts, &err), CKPT_OK);
    ck_assert_uint_eq(ckpt_plan_entry_count(plan), 5);   /* the weight, its scale and offset, the bias, the norm */
    ck_assert_str_eq(ckpt_plan_shard_name(plan, 0), "quant_model_weights-00001-of-00001.safetensors");
    static const struct {
        const char *name;
        ckpt_dtype dtype;
        ckpt_quant_role role;
    } want[] = {{"model.layers.0.self_attn.q_proj.weight", CKPT_DTYPE_I8, CKPT_QUANT_ROLE_WEIGHT},
                {"model.layers.0.self_attn.q_proj.weight_scale", CKPT_DTYPE_F32, CKPT_QUANT_ROLE_SCALE},
                {"model.layers.0.self_attn.q_proj.weight_offset", CKPT_DTYPE_F32, CKPT_QUANT_ROLE_OFFSET},
                {"model.layers.0.mlp.gate.e_score_correction_bias", CKPT_DTYPE_F32, CKPT_QUANT_ROLE_NONE},
                {"model.norm.weight", CKPT_DTYPE_BF16, CKPT_QUANT_ROLE_NONE}};
    for (size_t k = 0; k < 5; k++) {
        const ckpt_plan_entry *e = ckpt_plan_entry_at(plan, k);
        ck_assert_str_eq(e->name, want[k].name);
        ck_assert_int_eq(e->dtype, want[k].dtype);
        ck_assert_int_eq(e->quant_role, want[k].role);
        if (want[k].role) {
            ck_assert_int_eq(e->quant, CKPT_QUANT_W8A8_DYNAMIC);
            ck_assert_int_eq(e->load_dtype, CKPT_DTYPE_F32);
        }
    }
    ck_assert_uint_eq(ckpt_plan_entry_at(plan, 1)->shape[0], ROWS);
    ck_assert_uint_eq(ckpt_plan_entry_at(plan, 1)->shape[1], 1);
    ck_assert_int_eq(ckpt_plan_execute(plan, NULL, NULL, NULL, &err), CKPT_OK);
    ckpt_plan_free(plan);
    opts.quant = (ckpt_quant)7;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, dst, &opts, &err), CKPT_ERR_ARG);
    ckpt_source_free(src);
    /* the names both ways */
    ckpt_quant q;
    ck_assert_int_eq(ckpt_quant_parse("W8A8_DYNAMIC", &q), CKPT_OK);
    ck_assert_int_eq(q, CKPT_QUANT_W8A8_DYNAMIC);
    ck_assert_int_eq(ckpt_quant_parse("w8a16", &q), CKPT_OK);
    ck_assert_str_eq(ckpt_quant_name(q), "W8A16");
    ck_assert_str_eq(ckpt_quant_name(CKPT_QUANT_NONE), "FLOAT");
    ck_assert_int_eq(ckpt_quant_parse("w4a8", &q), CKPT_ERR_ARG);
    free(src_path);
    free(dst);
    test_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("quantize");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, quantized_in_the_load_type);
    tcase_add_test(tc, float32_list_beats_dtype_rules_refine_options);
    tcase_add_test(tc, library_sees_the_quantized_plan);
    suite_add_tcase(s, tc);
    return test_main(s);
}
