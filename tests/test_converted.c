/*
 * test_converted.c: folders that ckpt convert wrote, opened as sources.  An
 * NZ device image reads back as the logical tensors (equal to the source
 * they came from), converting it again never tiles twice, a quantized
 * folder lists its int8 tensors with their types and converts again into
 * the same tensors; records and descriptions edited to lie are refused.
 */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `ckpt convert SAMPLE DIR/NAME ARGS` or fail; returns the folder. */
static char *convert(const char *src, const char *dir, const char *name, const char *args)
{
    char *dst = test_join(dir, name), *err;
    int rc = test_ckpt(NULL, &err, "convert '%s' '%s' --quiet %s", src, dst, args);
    ck_assert_msg(rc == 0, "convert %s: %s", args, err);
    free(err);
    return dst;
}

/* Every tensor of `a` is in `b` with the same type, shape and bytes, and b has no other. */
static void expect_same_tensors(const char *a_path, const char *b_path)
{
    ckpt_source *a = test_open(a_path), *b = test_open(b_path);
    ck_assert_uint_eq(ckpt_source_tensor_count(a), ckpt_source_tensor_count(b));
    for (size_t i = 0; i < ckpt_source_tensor_count(a); i++) {
        const ckpt_tensor *ta = ckpt_source_tensor(a, i), *tb;
        uint8_t *x = test_read_tensor(a, ta->name, NULL), *y = test_read_tensor(b, ta->name, &tb);
        ck_assert_int_eq(ta->dtype, tb->dtype);
        ck_assert_uint_eq(ta->rank, tb->rank);
        ck_assert_mem_eq(ta->shape, tb->shape, ta->rank * sizeof *ta->shape);
        ck_assert_msg(memcmp(x, y, ta->nbytes) == 0, "%s differs between %s and %s", ta->name, a_path, b_path);
        free(x);
        free(y);
    }
    ckpt_source_free(a);
    ckpt_source_free(b);
}

/* The one shard of a folder. */
static char *only_shard(const char *dir)
{
    const char *const names[] = {"model-00001-of-00001.safetensors", "quant_model_weights-00001-of-00001.safetensors"};
    for (int k = 0; k < 2; k++) {
        char *p = test_join(dir, names[k]);
        FILE *f = fopen(p, "rb");
        if (f) {
            fclose(f);
            return p;
        }
        free(p);
    }
    ck_abort_msg("%s has no single shard", dir);
    return NULL;
}

/* Rewrites `old` as `new_text` (the same length) in a file. */
static void patch(const char *path, const char *old, const char *new_text)
{
    size_t n;
    uint8_t *bytes = test_read_file(path, &n);
    uint8_t *at = memmem(bytes, n, old, strlen(old));
    ck_assert_msg(at != NULL, "'%s' not in %s", old, path);
    ck_assert_uint_eq(strlen(old), strlen(new_text));
    memcpy(at, new_text, strlen(new_text));
    test_write_file(path, bytes, n);
    free(bytes);
}

/* Opening `path` fails as bad input, naming `needle`. */
static void expect_refused(const char *path, const char *needle)
{
    ckpt_source *src = NULL;
    ckpt_error err;
    int rc = ckpt_source_open(&src, path, NULL, &err);
    ck_assert_msg(rc == CKPT_ERR_FORMAT, "%s opened (%d: %s)", path, rc, err.message);
    ck_assert_msg(strstr(err.message, needle) != NULL, "'%s' lacks '%s'", err.message, needle);
    char *out = NULL, *errout = NULL;
    ck_assert_int_eq(test_ckpt(&out, &errout, "inspect '%s'", path), 3);
    free(out);
    free(errout);
}

START_TEST(nz_image_reads_as_its_source)
{
    char *dir = test_tmpdir(), *sample = test_testdata("sample");
    char *rules = test_join(dir, "t.rules");
    test_write_file(rules, "*.down_proj.weight layout=nz-t\n", 31);
    char args[4200];
    snprintf(args, sizeof args, "--target ascend-910b --nz all --rules '%s'", rules);
    char *nz = convert(sample, dir, "nz", args);
    expect_same_tensors(sample, nz);   /* bf16 kept: the untiled tiles are the source's bytes */
    ckpt_source *src = test_open(nz);
    size_t i;
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.1.mlp.down_proj.weight", &i), CKPT_OK);
    const ckpt_tensor_storage *st = ckpt_source_tensor_storage(src, i);
    ck_assert_int_eq(st->layout, CKPT_LAYOUT_FRACTAL_NZ);
    ck_assert(st->transposed);
    ck_assert_uint_eq(st->shape[0], 4);    /* [170, 64] tiled: ceil(64 / 16) column blocks */
    ck_assert_uint_eq(st->shape[1], 11);   /* ceil(170 / 16) row blocks */
    ck_assert_uint_eq(ckpt_source_tensor(src, i)->shape[0], 64);
    ckpt_source_free(src);
    /* converted again: to ND, the source's tensors; to NZ, the same tiles, not tiles of tiles */
    char *nd = convert(nz, dir, "nd", "--target nd");
    expect_same_tensors(sample, nd);
    char *again = convert(nz, dir, "again", args);
    char *s1 = only_shard(nz), *s2 = only_shard(again);
    size_t n1, n2;
    uint8_t *b1 = test_read_file(s1, &n1), *b2 = test_read_file(s2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(b1, b2, n1) == 0, "converting the NZ image again changed its shard");
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", again, nz), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "diff '%s' '%s'", sample, nz), 0);
    free(b1);
    free(b2);
    free(s1);
    free(s2);
    free(again);
    free(nd);
    free(nz);
    free(rules);
    free(sample);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* An int8 weight tiled with C0 = 32 reads back as the ND folder's codes. */
START_TEST(int8_nz_image_reads_as_codes)
{
    char *dir = test_tmpdir(), *sample = test_testdata("sample");
    char *plain = convert(sample, dir, "q", "--target ascend-910b --quant w8a16");
    char *tiled = convert(sample, dir, "qnz", "--target ascend-910b --quant w8a16 --nz all");
    expect_same_tensors(plain, tiled);
    ckpt_source *src = test_open(tiled);
    size_t i;
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.0.mlp.gate_proj.weight", &i), CKPT_OK);
    const ckpt_tensor_storage *st = ckpt_source_tensor_storage(src, i);
    ck_assert_int_eq(st->layout, CKPT_LAYOUT_FRACTAL_NZ);
    ck_assert_uint_eq(st->c0, 32);
    ck_assert_uint_eq(st->shape[0], 2);    /* [170, 64] int8: ceil(64 / 32) */
    ck_assert_str_eq(st->quant, "W8A16");
    ckpt_source_free(src);
    free(plain);
    free(tiled);
    free(sample);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(lying_layout_records_are_refused)
{
    char *dir = test_tmpdir(), *sample = test_testdata("sample");
    static const struct {
        const char *old, *new_text, *needle;
    } lies[] = {
        /* the record is a JSON string in the header: its quotes are escaped there */
        {"\\\"nd_shape\\\":[64,170]", "\\\"nd_shape\\\":[64,169]", "view_shape"},
        {"\\\"storage_shape\\\":[11,4,", "\\\"storage_shape\\\":[11,5,", "storage_shape"},
        {"\\\"view_shape\\\":[64,170]", "\\\"xiew_shape\\\":[64,170]", NULL},   /* then: */
        {"\\\"nd_shape\\\":[64,170]", "\\\"nd_shape\\\":[64,150]", "not the FRACTAL_NZ tiling"},
        {"\\\"nd_shape\\\":[64,170]", "\\\"nd_shape\\\":[64,-70]", "no nd_shape"},
        {"\\\"c0\\\":16,\\\"storage_nbytes\\\":22528", "\\\"c0\\\":32,\\\"storage_nbytes\\\":22528", "C0 32"},
        {"\\\"acl_format\\\":29,", "\\\"acl_format\\\":28,", "acl_format"},
        {"\\\"acl_dtype\\\":27,", "\\\"acl_dtype\\\":26,", "acl_dtype"},
        {"\\\"storage_nbytes\\\":22528", "\\\"storage_nbytes\\\":22529", "storage_nbytes"},
        {"\\\"orientation\\\":\\\"out,in\\\",\\\"storage_shape\\\":[11,4",
         "\\\"orientation\\\":\\\"in,out\\\",\\\"storage_shape\\\":[11,4", "orientation"},
        {"ckpt.layout.model.layers.0.mlp.down_proj.weight", "ckpt.layout.model.layers.0.mlp.down_proj.weighx",
         "names no tensor"},
    };
    for (size_t k = 0; k < sizeof lies / sizeof lies[0]; k++) {
        char name[16];
        snprintf(name, sizeof name, "lie%zu", k);
        char *nz = convert(sample, dir, name, "--target ascend-910b --nz all");
        char *shard = only_shard(nz);
        patch(shard, lies[k].old, lies[k].new_text);
        if (!lies[k].needle)   /* an unknown key is ignored: the next lie is told in the same record */
            patch(shard, lies[k + 1].old, lies[k + 1].new_text), k++;
        expect_refused(nz, lies[k].needle);
        free(shard);
        free(nz);
    }
    free(sample);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(quantized_folder_as_source)
{
    char *dir = test_tmpdir(), *sample = test_testdata("sample");
    char *q = convert(sample, dir, "q", "--target ascend-910b --quant w8a8-dynamic");
    ckpt_source *src = test_open(q);
    size_t i;
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.1.self_attn.o_proj.weight", &i), CKPT_OK);
    ck_assert_int_eq(ckpt_source_tensor(src, i)->dtype, CKPT_DTYPE_I8);
    ck_assert_str_eq(ckpt_source_tensor_storage(src, i)->quant, "W8A8_DYNAMIC");
    ck_assert_int_eq(ckpt_source_find(src, "model.layers.1.self_attn.o_proj.weight_scale", &i), CKPT_OK);
    ck_assert_int_eq(ckpt_source_tensor(src, i)->dtype, CKPT_DTYPE_F32);
    ck_assert_int_eq(ckpt_source_find(src, "model.norm.weight", &i), CKPT_OK);
    ck_assert_str_eq(ckpt_source_tensor_storage(src, i)->quant, "FLOAT");
    ck_assert_str_eq(ckpt_source_metadata_value(src, "msmodelslim.model_quant_type"), "W8A8_DYNAMIC");
    ckpt_source_free(src);
    /* converted again (re-sharded): the same tensors and types, scales still float32 */
    char *again = convert(q, dir, "again", "--target ascend-910b --max-shard-size 50KB");
    expect_same_tensors(q, again);
    char *d1 = test_join(q, "quant_model_description.json"), *d2 = test_join(again, "quant_model_description.json");
    json_t *j1 = json_load_file(d1, 0, NULL), *j2 = json_load_file(d2, 0, NULL);
    ck_assert(json_equal(j1, j2));
    json_decref(j1);
    json_decref(j2);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", again, q), 0);
    /* quantizing it again is refused: its weights are int8 already */
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/twice' --target ascend-910b --quant w8a16", q, dir), 3);
    ck_assert_msg(strstr(err, "quantized already"), "%s", err);
    free(err);
    free(d1);
    free(d2);
    free(again);
    free(q);
    free(sample);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(lying_descriptions_are_refused)
{
    char *dir = test_tmpdir(), *sample = test_testdata("sample");
    static const struct {
        const char *old, *new_text, *needle;
    } lies[] = {
        {"\"model.embed_tokens.weight\": \"FLOAT\"", "\"model.embed_tokens.weight\": \"W8A16\"", "not an int8 matrix"},
        {"\"model.embed_tokens.weight\": \"FLOAT\"", "\"model.embed_tokens.weight\": 1234567", "not a type name"},
        {"\"model.embed_tokens.weight\": \"FLOAT\"", "\"model.embed_tokens.weight\": \"fl;at\"", "not a type name"},
        {"\"group_size\": 0", "\"group_size\": -", "invalid JSON"},
    };
    for (size_t k = 0; k < sizeof lies / sizeof lies[0]; k++) {
        char name[16];
        snprintf(name, sizeof name, "lie%zu", k);
        char *q = convert(sample, dir, name, "--target ascend-910b --quant w8a16");
        char *desc = test_join(q, "quant_model_description.json");
        patch(desc, lies[k].old, lies[k].new_text);
        expect_refused(q, lies[k].needle);
        free(desc);
        free(q);
    }
    /* a key twice */
    char *q = convert(sample, dir, "twice", "--target ascend-910b --quant w8a16");
    char *desc = test_join(q, "quant_model_description.json");
    patch(desc, "\"model.layers.0.input_layernorm.weight\"", "\"model.embed_tokens.weight\"            ");
    expect_refused(q, "quant_model_description.json");
    free(desc);
    free(q);
    free(sample);
    test_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("converted");
    TCase *tc = tcase_create("converted");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, nz_image_reads_as_its_source);
    tcase_add_test(tc, int8_nz_image_reads_as_codes);
    tcase_add_test(tc, lying_layout_records_are_refused);
    tcase_add_test(tc, quantized_folder_as_source);
    tcase_add_test(tc, lying_descriptions_are_refused);
    suite_add_tcase(s, tc);
    return test_main(s);
}
