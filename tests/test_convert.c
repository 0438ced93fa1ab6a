/*
 * test_convert.c: `ckpt convert` and its library calls, end to end.
 *
 * Every output tensor is checked against an independent reference computed
 * here: the NZ layout is undone with the formula from docs/manifest.md, and
 * values are compared with the source cast by the compiler's own
 * conversions (bf16 -> float is exact; float -> _Float16 rounds to nearest
 * even).  The manifest's checksums are recomputed from the files.
 */
#include "helpers.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- references ---- */

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_f16_bits(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t bits;
    memcpy(&bits, &h, 2);
    return bits;
}

/* Undoes FRACTAL_NZ with tile rows of c0 elements for one [m, n] matrix, checking the padding is zero. */
static uint8_t *undo_nz_c0(const uint8_t *nz, uint64_t m, uint64_t n, size_t esize, uint64_t c0)
{
    uint64_t n1 = (n + c0 - 1) / c0, mp = (m + 15) / 16 * 16;
    uint8_t *nd = malloc(m * n * esize + 1);
    for (uint64_t r = 0; r < mp; r++)
        for (uint64_t c = 0; c < n1 * c0; c++) {
            const uint8_t *src = nz + ((c / c0) * (mp * c0) + r * c0 + c % c0) * esize;
            if (r < m && c < n) {
                memcpy(nd + (r * n + c) * esize, src, esize);
            } else {
                for (size_t k = 0; k < esize; k++)
                    ck_assert_msg(src[k] == 0, "padding at row %llu col %llu is not zero", (unsigned long long)r,
                                  (unsigned long long)c);
            }
        }
    return nd;
}

/* The same with C0 of 32 bytes of a row (16 for 2-byte elements, 32 for 1-byte ones). */
static uint8_t *undo_nz(const uint8_t *nz, uint64_t m, uint64_t n, size_t esize)
{
    return undo_nz_c0(nz, m, n, esize, 32 / esize);
}

/*
 * The bytes a tensor has in the (one) shard of an output folder, read from
 * the safetensors header by hand: as stored, tiles included (a source opened
 * through the library presents NZ tensors untiled).  *shape gets the stored
 * shape (at most 8 dims), *meta the shard's __metadata__ (to json_decref).
 */
static uint8_t *read_stored(const char *dst, const char *shard, const char *name, uint64_t *shape, uint32_t *rank,
                            json_t **meta)
{
    char *path = test_join(dst, shard);
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    uint64_t hlen;
    memcpy(&hlen, file, 8);
    json_t *header = json_loadb((const char *)file + 8, hlen, 0, NULL), *e = json_object_get(header, name);
    ck_assert_msg(e != NULL, "%s has no %s", path, name);
    *rank = (uint32_t)json_array_size(json_object_get(e, "shape"));
    for (uint32_t d = 0; d < *rank && d < 8; d++)
        shape[d] = (uint64_t)json_integer_value(json_array_get(json_object_get(e, "shape"), d));
    json_t *off = json_object_get(e, "data_offsets");
    uint64_t a = (uint64_t)json_integer_value(json_array_get(off, 0));
    uint64_t b = (uint64_t)json_integer_value(json_array_get(off, 1));
    uint8_t *data = malloc(b - a + 1);
    memcpy(data, file + 8 + hlen + a, b - a);
    if (meta)
        *meta = json_incref(json_object_get(header, "__metadata__"));
    json_decref(header);
    free(file);
    free(path);
    return data;
}

/* ---- running the CLI ---- */

static char *convert_sample(const char *args)
{
    char *dir = test_tmpdir();
    char *dst = test_join(dir, "out");
    char *sample = test_testdata("sample");
    char *err;
    int rc = test_ckpt(NULL, &err, "convert '%s' '%s' %s", sample, dst, args);
    ck_assert_msg(rc == 0, "convert %s failed (%d): %s", args, rc, err);
    free(err);
    free(sample);
    free(dir);
    return dst;
}

static void remove_output(char *dst)
{
    char *parent = strdup(dst);
    *strrchr(parent, '/') = '\0';
    test_rmtree(parent);
    free(parent);
    free(dst);
}

/* ---- checks on an output folder ---- */

static void check_manifest_hashes(const char *dst)
{
    char *mpath = test_join(dst, "ckpt-manifest.json");
    json_error_t jerr;
    json_t *m = json_load_file(mpath, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(m != NULL, "manifest: %s", jerr.text);
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f) {
        char *path = test_join(dst, json_string_value(json_object_get(f, "path")));
        size_t len;
        uint8_t *data = test_read_file(path, &len);
        ck_assert_uint_eq(len, (size_t)json_integer_value(json_object_get(f, "size")));
        char hex[33];
        test_xxh128_hex(data, len, hex);
        ck_assert_str_eq(hex, json_string_value(json_object_get(f, "xxh3_128")));
        free(data);
        free(path);
    }
    /* every file of the folder is listed, except the manifest */
    DIR *d = opendir(dst);
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.' && strcmp(e->d_name, "ckpt-manifest.json") != 0;
    closedir(d);
    ck_assert_uint_eq(files, json_array_size(json_object_get(m, "files")));
    /* tensor hashes against the stored bytes (tiles included), read from the shards by hand */
    json_t *t;
    json_array_foreach(json_object_get(m, "tensors"), i, t) {
        if (json_object_get(t, "alias_of"))
            continue;
        uint64_t shape[8];
        uint32_t rank;
        uint8_t *bytes = read_stored(dst, json_string_value(json_object_get(t, "file")),
                                     json_string_value(json_object_get(t, "name")), shape, &rank, NULL);
        char hex[33];
        test_xxh128_hex(bytes, (size_t)json_integer_value(json_object_get(t, "nbytes")), hex);
        ck_assert_str_eq(hex, json_string_value(json_object_get(t, "xxh3_128")));
        free(bytes);
    }
    json_decref(m);
    free(mpath);
}

START_TEST(convert_nd_is_identity)
{
    char *dst = convert_sample("--target nd --max-shard-size 100000");
    char *sample = test_testdata("sample");
    ckpt_source *a = test_open(sample), *b = test_open(dst);
    ck_assert_uint_eq(ckpt_source_tensor_count(a), ckpt_source_tensor_count(b));
    ck_assert_uint_ge(ckpt_source_file_count(b), 3);   /* 261504 bytes in shards of at most 100000 */
    for (size_t i = 0; i < ckpt_source_tensor_count(a); i++) {
        const ckpt_tensor *ta = ckpt_source_tensor(a, i), *tb;
        uint8_t *x = test_read_tensor(a, ta->name, NULL), *y = test_read_tensor(b, ta->name, &tb);
        ck_assert_int_eq(ta->dtype, tb->dtype);
        ck_assert_mem_eq(x, y, ta->nbytes);
        free(x);
        free(y);
    }
    check_manifest_hashes(dst);
    /* side files: config copied with its dtype, generation config unchanged */
    char *gen = test_join(dst, "generation_config.json"), *gen_src = test_join(sample, "generation_config.json");
    size_t n1, n2;
    uint8_t *g1 = test_read_file(gen, &n1), *g2 = test_read_file(gen_src, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(g1, g2, n1);
    free(g1);
    free(g2);
    free(gen);
    free(gen_src);
    ckpt_source_free(a);
    ckpt_source_free(b);
    free(sample);
    remove_output(dst);
}
END_TEST

/* ascend-310p: every tensor f16 (the compiler's own rounding of the bf16 value), ND, shapes unchanged */
START_TEST(convert_310p_values_and_layout)
{
    char *dst = convert_sample("--target ascend-310p --jobs 2 --max-memory 64KiB");
    char *sample = test_testdata("sample");
    ckpt_source *a = test_open(sample), *b = test_open(dst);
    for (size_t i = 0; i < ckpt_source_tensor_count(a); i++) {
        const ckpt_tensor *ta = ckpt_source_tensor(a, i), *tb;
        uint8_t *x = test_read_tensor(a, ta->name, NULL), *y = test_read_tensor(b, ta->name, &tb);
        ck_assert_int_eq(tb->dtype, CKPT_DTYPE_F16);
        ck_assert_uint_eq(tb->rank, ta->rank);
        ck_assert_mem_eq(tb->shape, ta->shape, ta->rank * sizeof *ta->shape);
        size_t j;
        ck_assert_int_eq(ckpt_source_find(b, ta->name, &j), CKPT_OK);
        ck_assert_int_eq(ckpt_source_tensor_storage(b, j)->layout, CKPT_LAYOUT_ND);
        for (uint64_t k = 0; k < ta->nbytes / 2; k++) {
            uint16_t src_bits, out_bits;
            memcpy(&src_bits, x + 2 * k, 2);
            memcpy(&out_bits, y + 2 * k, 2);
            ck_assert_msg(out_bits == float_to_f16_bits(bf16_to_float(src_bits)), "%s[%llu]", ta->name,
                          (unsigned long long)k);
        }
        free(x);
        free(y);
    }
    /* nothing tiled: no layout record in the shard metadata */
    for (size_t i = 0; i < ckpt_source_metadata_count(b); i++) {
        const char *k, *v;
        ckpt_source_metadata(b, i, &k, &v);
        ck_assert_msg(strncmp(k, "ckpt.layout.", 12) != 0, "%s is tiled", k);
    }
    /* config.json now says float16 */
    char *config = test_join(dst, "config.json");
    json_t *c = json_load_file(config, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(c, "torch_dtype")), "float16");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "vocab_size")), 317);
    ck_assert(json_real_value(json_object_get(c, "rms_norm_eps")) == 1e-5);
    json_decref(c);
    size_t config_len;
    char *config_text = (char *)test_read_file(config, &config_len);   /* as few digits as read back exactly */
    static const char eps[] = "\"rms_norm_eps\": 1e-5,";
    ck_assert_ptr_nonnull(memmem(config_text, config_len, eps, sizeof eps - 1));
    free(config_text);
    free(config);
    check_manifest_hashes(dst);
    ckpt_source_free(a);
    ckpt_source_free(b);
    free(sample);
    remove_output(dst);
}
END_TEST

/*
 * --nz all: every matrix tiled as stored, checked on the bytes in the shard
 * with docs/manifest.md's formula; the device-image record in the shard
 * metadata; the folder opened again presents the logical f16 values.
 */
START_TEST(convert_nz_device_image)
{
    char *dst = convert_sample("--target ascend-310p --nz all --max-memory 64KiB");
    char *sample = test_testdata("sample");
    ckpt_source *a = test_open(sample), *b = test_open(dst);
    size_t tiled = 0;
    for (size_t i = 0; i < ckpt_source_tensor_count(a); i++) {
        const ckpt_tensor *ta = ckpt_source_tensor(a, i), *tb;
        uint8_t *x = test_read_tensor(a, ta->name, NULL), *y = test_read_tensor(b, ta->name, &tb);
        uint64_t shape[8];
        uint32_t rank;
        uint8_t *stored = read_stored(dst, "model-00001-of-00001.safetensors", ta->name, shape, &rank, NULL);
        uint8_t *nd = stored;
        ck_assert_uint_eq(tb->rank, ta->rank);   /* logical, whatever is stored */
        ck_assert_mem_eq(tb->shape, ta->shape, ta->rank * sizeof *ta->shape);
        if (ta->rank == 2) {
            uint64_t m = ta->shape[0], n = ta->shape[1];
            ck_assert_uint_eq(rank, 4);
            ck_assert_uint_eq(shape[0], (n + 15) / 16);
            ck_assert_uint_eq(shape[1], (m + 15) / 16);
            ck_assert_uint_eq(shape[2], 16);
            ck_assert_uint_eq(shape[3], 16);
            nd = undo_nz(stored, m, n, 2);
            tiled++;
        }
        for (uint64_t k = 0; k < ta->nbytes / 2; k++) {
            uint16_t src_bits, out_bits, read_bits;
            memcpy(&src_bits, x + 2 * k, 2);
            memcpy(&out_bits, nd + 2 * k, 2);
            memcpy(&read_bits, y + 2 * k, 2);
            ck_assert_msg(out_bits == float_to_f16_bits(bf16_to_float(src_bits)), "%s[%llu]", ta->name,
                          (unsigned long long)k);
            ck_assert_uint_eq(read_bits, out_bits);
        }
        if (nd != stored)
            free(nd);
        free(stored);
        free(x);
        free(y);
    }
    ck_assert_uint_eq(tiled, 2 * 7 + 2);   /* q, k, v, o, gate, up, down in each of 2 layers, embeddings, lm_head */
    const char *v = ckpt_source_metadata_value(b, "ckpt.layout.model.layers.0.mlp.down_proj.weight");
    ck_assert_str_eq(v, "{\"layout\":\"FRACTAL_NZ\",\"nd_shape\":[64,170],\"transposed\":false,\"acl_format\":29,"
                        "\"acl_dtype\":1,\"acl_dtype_name\":\"ACL_FLOAT16\",\"view_shape\":[64,170],\"orientation\":"
                        "\"out,in\",\"storage_shape\":[11,4,16,16],\"c0\":16,\"storage_nbytes\":22528}");
    size_t j;
    ck_assert_int_eq(ckpt_source_find(b, "model.layers.0.mlp.down_proj.weight", &j), CKPT_OK);
    const ckpt_tensor_storage *st = ckpt_source_tensor_storage(b, j);
    ck_assert_int_eq(st->layout, CKPT_LAYOUT_FRACTAL_NZ);
    ck_assert_uint_eq(st->rank, 4);
    ck_assert_uint_eq(st->shape[0], 11);
    ck_assert_uint_eq(st->nbytes, 22528);
    ck_assert_uint_eq(st->c0, 16);
    check_manifest_hashes(dst);
    ckpt_source_free(a);
    ckpt_source_free(b);
    free(sample);
    remove_output(dst);
}
END_TEST

/* 4-byte NZ: refused without a C0, tiled 8 wide with --nz-fp32-c0 8 (aclnnNpuFormatCast's C0 on A2/A3) */
START_TEST(fp32_nz_needs_a_c0)
{
    char *sample = test_testdata("sample");
    char *dir = test_tmpdir();
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/a' --target nd --dtype f32 --nz all", sample, dir), 2);
    ck_assert_msg(strstr(err, "--nz-fp32-c0"), "%s", err);
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/a' --target nd --nz all --nz-fp32-c0 4", sample, dir), 2);
    free(err);
    free(sample);
    char *dst = convert_sample("--target nd --dtype f32 --nz all --nz-fp32-c0 8");
    sample = test_testdata("sample");
    ckpt_source *a = test_open(sample);
    uint64_t shape[8];
    uint32_t rank;
    json_t *meta;
    uint8_t *stored = read_stored(dst, "model-00001-of-00001.safetensors", "model.layers.1.mlp.up_proj.weight", shape,
                                  &rank, &meta);
    ck_assert_uint_eq(rank, 4);
    ck_assert_uint_eq(shape[0], 8);    /* ceil(64 / 8) */
    ck_assert_uint_eq(shape[1], 11);   /* ceil(170 / 16) */
    ck_assert_uint_eq(shape[3], 8);
    uint8_t *nd = undo_nz_c0(stored, 170, 64, 4, 8);
    uint8_t *x = test_read_tensor(a, "model.layers.1.mlp.up_proj.weight", NULL);
    for (int k = 0; k < 170 * 64; k++) {
        uint16_t h;
        float f;
        memcpy(&h, x + 2 * k, 2);
        memcpy(&f, nd + 4 * k, 4);
        ck_assert_float_eq(f, bf16_to_float(h));
    }
    json_t *rec = json_loads(json_string_value(json_object_get(meta, "ckpt.layout.model.layers.1.mlp.up_proj.weight")),
                             0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(rec, "c0")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(rec, "acl_dtype")), 0);   /* ACL_FLOAT */
    json_decref(rec);
    json_decref(meta);
    free(nd);
    free(x);
    free(stored);
    ckpt_source_free(a);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s' --against '%s'", dst, sample), 0);
    free(sample);
    remove_output(dst);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(convert_910b_keeps_bf16_and_rules_apply)
{
    char *dir = test_tmpdir();
    char *rules = test_join(dir, "rules.txt");
    const char *text = "# test rules\n"
                       "*.mlp.down_proj.weight  layout=nz-t\n"
                       "lm_head.weight          drop\n"
                       "model.layers.*.input_layernorm.weight  rename=layers.$1.ln_in dtype=f32\n";
    test_write_file(rules, text, strlen(text));
    char *args = malloc(strlen(rules) + 64);
    sprintf(args, "--target ascend-910b --rules '%s'", rules);
    char *dst = convert_sample(args);
    char *sample = test_testdata("sample");
    ckpt_source *a = test_open(sample), *b = test_open(dst);
    size_t idx;
    ck_assert_int_eq(ckpt_source_find(b, "lm_head.weight", &idx), CKPT_ERR_NOT_FOUND);
    ck_assert_uint_eq(ckpt_source_tensor_count(b), ckpt_source_tensor_count(a) - 1);
    /* renamed and widened: bf16 -> f32 is exact */
    const ckpt_tensor *ln;
    uint8_t *x = test_read_tensor(a, "model.layers.1.input_layernorm.weight", NULL);
    uint8_t *y = test_read_tensor(b, "layers.1.ln_in", &ln);
    ck_assert_int_eq(ln->dtype, CKPT_DTYPE_F32);
    for (int k = 0; k < 64; k++) {
        uint16_t h;
        float f;
        memcpy(&h, x + 2 * k, 2);
        memcpy(&f, y + 4 * k, 4);
        ck_assert_float_eq(f, bf16_to_float(h));
    }
    free(x);
    free(y);
    /* [64, 170] down_proj transposed to [170, 64], then tiled; bf16 kept; read back untiled as [64, 170] */
    const ckpt_tensor *dp;
    uint64_t shape[8];
    uint32_t rank;
    x = test_read_tensor(a, "model.layers.0.mlp.down_proj.weight", NULL);
    y = test_read_tensor(b, "model.layers.0.mlp.down_proj.weight", &dp);
    uint8_t *stored = read_stored(dst, "model-00001-of-00001.safetensors", "model.layers.0.mlp.down_proj.weight",
                                  shape, &rank, NULL);
    ck_assert_int_eq(dp->dtype, CKPT_DTYPE_BF16);
    ck_assert_uint_eq(dp->shape[0], 64);
    ck_assert_uint_eq(dp->shape[1], 170);
    ck_assert_uint_eq(shape[0], 4);    /* ceil(64/16) */
    ck_assert_uint_eq(shape[1], 11);   /* ceil(170/16) */
    uint8_t *nd = undo_nz(stored, 170, 64, 2);
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 170; c++)
            ck_assert_mem_eq(nd + (c * 64 + r) * 2, x + (r * 170 + c) * 2, 2);
    ck_assert_mem_eq(y, x, 64 * 170 * 2);
    free(stored);
    free(nd);
    free(x);
    free(y);
    check_manifest_hashes(dst);
    ckpt_source_free(a);
    ckpt_source_free(b);
    free(sample);
    free(args);
    remove_output(dst);
    test_rmtree(dir);
    free(rules);
    free(dir);
}
END_TEST

START_TEST(dry_run_writes_nothing)
{
    char *dir = test_tmpdir();
    char *dst = test_join(dir, "out");
    char *sample = test_testdata("sample");
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "convert '%s' '%s' --target ascend-310p --dry-run --json", sample, dst), 0);
    json_t *plan = json_loads(out, 0, NULL);
    ck_assert_ptr_nonnull(plan);
    ck_assert_uint_eq(json_array_size(json_object_get(plan, "tensors")), 21);
    ck_assert_int_eq(json_integer_value(json_object_get(plan, "bytes_in")), 261504);
    json_t *first = json_array_get(json_object_get(plan, "tensors"), 2);   /* layer 0 q_proj */
    ck_assert_str_eq(json_string_value(json_object_get(first, "layout")), "ND");
    ck_assert_str_eq(json_string_value(json_object_get(first, "dtype")), "F16");
    json_decref(plan);
    free(out);
    struct stat st;
    ck_assert_int_ne(stat(dst, &st), 0);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        ck_assert_msg(e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.'), "left %s", e->d_name);
    closedir(d);
    test_rmtree(dir);
    free(dst);
    free(sample);
    free(dir);
}
END_TEST

START_TEST(existing_destination_refused)
{
    char *dst = convert_sample("--target nd");
    char *sample = test_testdata("sample");
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target nd", sample, dst), 4);
    ck_assert_ptr_nonnull(strstr(err, "already exists"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-310p --force", sample, dst), 0);
    free(err);
    ckpt_source *b = test_open(dst);
    ck_assert_int_eq(ckpt_source_tensor(b, 0)->dtype, CKPT_DTYPE_F16);
    ckpt_source_free(b);
    check_manifest_hashes(dst);
    /* --force never replaces a DST that is the source or holds it: DST itself as SRC, its shard, its parent */
    char *shard = test_join(dst, "model-00001-of-00001.safetensors"), *parent = test_join(dst, "..");
    const char *const sources[] = {dst, shard, dst};
    const char *const dsts[] = {dst, dst, parent};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target nd --force", sources[k], dsts[k]), 2);
        ck_assert_msg(strstr(err, "the destination holds the source"), "%s", err);
        free(err);
    }
    check_manifest_hashes(dst);   /* untouched */
    free(shard);
    free(parent);
    free(sample);
    remove_output(dst);
}
END_TEST

START_TEST(usage_and_input_errors)
{
    char *sample = test_testdata("sample");
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s'", sample), 2);
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' /tmp/x", sample), 2);   /* no --target */
    ck_assert_ptr_nonnull(strstr(err, "--target is required"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' /tmp/x --target gpu", sample), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown target 'gpu'"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' /tmp/x --jobs 0", sample), 2);
    free(err);
    char *dir = test_tmpdir();
    char *rules = test_join(dir, "bad.rules");
    test_write_file(rules, "*.weight explode\n", 17);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/out' --target nd --rules '%s'", sample, dir, rules), 3);
    ck_assert_ptr_nonnull(strstr(err, ":1: unknown action 'explode'"));
    free(err);
    char *abuse = test_external("safetensors-cpp/safetensors_abuse_attempt_1.safetensors");
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/out' --target nd", abuse, dir), 3);
    free(err);
    struct stat st;
    char *out = test_join(dir, "out");
    ck_assert_int_ne(stat(out, &st), 0);
    test_rmtree(dir);
    free(out);
    free(abuse);
    free(rules);
    free(dir);
    free(sample);
}
END_TEST

/* ---- fp8 block-scaled weights ---- */

/* e4m3fn decoded by its definition: sign, 4 exponent bits (bias 7), 3 mantissa bits. */
static float e4m3_value(uint8_t c)
{
    int e = (c >> 3) & 15, m = c & 7;
    float v = e ? ldexpf(1.0f + m / 8.0f, e - 7) : ldexpf(m / 8.0f, -6);
    return c & 0x80 ? -v : v;
}

static uint16_t f32_to_bf16_rne(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

START_TEST(fp8_weights_are_dequantized)
{
    char *dir = test_tmpdir();
    char *src = test_join(dir, "fp8"), *dst = test_join(dir, "out");
    mkdir(src, 0755);
    /* a 130 x 200 e4m3 weight in 64 x 64 blocks (from config.json): scales [3, 4], edge blocks smaller */
    enum { R = 130, C = 200, SR = 3, SC = 4 };
    uint8_t *w = malloc(R * C);
    float scales[SR * SC];
    for (int i = 0; i < R * C; i++)
        w[i] = (uint8_t)((i * 131 + 7) % 251) & 0xF7;   /* no NaN codes */
    for (int i = 0; i < SR * SC; i++)
        scales[i] = 0.001f * (float)(i + 1) * (i % 2 ? -1.0f : 1.0f);
    ckpt_tensor plan[3] = {{"model.layers.0.mlp.down_proj.weight", CKPT_DTYPE_F8_E4M3, 2, (uint64_t[]){R, C}, 0, 0, NULL},
                           {"model.layers.0.mlp.down_proj.weight_scale_inv", CKPT_DTYPE_F32, 2, (uint64_t[]){SR, SC}, 0, 0,
                            NULL},
                           {"model.norm.weight", CKPT_DTYPE_BF16, 1, (uint64_t[]){4}, 0, 0, NULL}};
    char *shard = test_join(src, "model.safetensors");
    ckpt_writer *wr;
    ck_assert_int_eq(ckpt_writer_open(&wr, shard, plan, 3, NULL, 0, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(wr, w, R * C, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(wr, scales, sizeof scales, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(wr, "\x80\x3f\x00\x40\x40\x40\x80\x40", 8, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(wr, NULL), CKPT_OK);
    ckpt_writer_free(wr);
    char *config = test_join(src, "config.json");
    const char *cfg = "{\"torch_dtype\": \"bfloat16\", \"quantization_config\": {\"quant_method\": \"fp8\", "
                      "\"weight_block_size\": [64, 64]}}";
    test_write_file(config, cfg, strlen(cfg));

    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-910b", src, dst), 0);
    free(err);
    ckpt_source *out = test_open(dst);
    size_t idx;
    ck_assert_int_eq(ckpt_source_find(out, "model.layers.0.mlp.down_proj.weight_scale_inv", &idx), CKPT_ERR_NOT_FOUND);
    const ckpt_tensor *t;
    uint8_t *got = test_read_tensor(out, "model.layers.0.mlp.down_proj.weight", &t);
    ck_assert_int_eq(t->dtype, CKPT_DTYPE_BF16);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            uint16_t g;
            memcpy(&g, got + 2 * (r * C + c), 2);
            float expect = e4m3_value(w[r * C + c]) * scales[(r / 64) * SC + c / 64];
            ck_assert_msg(g == f32_to_bf16_rne(expect), "[%d, %d]: 0x%04x", r, c, g);
        }
    free(got);
    ckpt_source_free(out);
    /* config.json lost its fp8 quantization_config; the manifest names the scales */
    char *out_config = test_join(dst, "config.json");
    json_t *c = json_load_file(out_config, 0, NULL);
    ck_assert_ptr_null(json_object_get(c, "quantization_config"));
    ck_assert_str_eq(json_string_value(json_object_get(c, "torch_dtype")), "bfloat16");
    json_decref(c);
    check_manifest_hashes(dst);
    /* and verify --against recomputes it bit for bit */
    ck_assert_int_eq(test_ckpt(NULL, &err, "verify '%s' --against '%s'", dst, src), 0);
    free(err);
    free(out_config);
    free(config);
    free(shard);
    free(w);
    test_rmtree(dir);
    free(src);
    free(dst);
    free(dir);
}
END_TEST

/* ---- interruption ---- */

/* A 48 MiB bf16 checkpoint, large enough that a conversion takes a while. */
static char *make_big_source(const char *dir)
{
    char *path = test_join(dir, "big.safetensors");
    ckpt_tensor plan[6];
    char names[6][16];
    uint64_t shape[2] = {2048, 2048};
    for (int i = 0; i < 6; i++) {
        sprintf(names[i], "w%d.weight", i);
        plan[i] = (ckpt_tensor){names[i], CKPT_DTYPE_BF16, 2, shape, 0, 0, NULL};
    }
    ckpt_writer *w;
    ckpt_error err;
    ck_assert_int_eq(ckpt_writer_open(&w, path, plan, 6, NULL, 0, &err), CKPT_OK);
    uint16_t *row = malloc(2048 * 2);
    for (int i = 0; i < 6 * 2048; i++) {
        for (int k = 0; k < 2048; k++)
            row[k] = (uint16_t)(0x3c00 + ((i * 31 + k) & 0x3ff));
        ck_assert_int_eq(ckpt_writer_write(w, row, 2048 * 2, &err), CKPT_OK);
    }
    free(row);
    ck_assert_int_eq(ckpt_writer_finish(w, &err), CKPT_OK);
    ckpt_writer_free(w);
    return path;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t start_convert(const char *src, const char *dst)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(getenv("CKPT_BIN"), "ckpt", "convert", src, dst, "--target", "ascend-310p", "--jobs", "1",
              "--max-memory", "1MiB", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/*
 * SIGKILL at 24 random points of a run whose length is measured first
 * (the seed is in every failure message): a killed run must leave no
 * destination (or, killed after the final rename, a complete one that
 * verifies), and the next run must sweep its temporary folder away.  Most
 * kills must land mid-run, or the test proves nothing.
 */
START_TEST(killed_conversion_leaves_nothing)
{
    char *dir = test_tmpdir();
    char *src = make_big_source(dir);
    char *dst = test_join(dir, "out");
    int status;
    /* the shortest of three runs: a run slowed by a busy machine would put the kills past the end */
    double full = 0;
    for (int run = 0; run < 3; run++) {
        double t0 = seconds_now();
        waitpid(start_convert(src, dst), &status, 0);
        double took = seconds_now() - t0;
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        test_rmtree(dst);
        if (run == 0 || took < full)
            full = took;
    }

    const unsigned seed0 = (unsigned)time(NULL) ^ (unsigned)getpid();
    unsigned seed = seed0;
    int attempts = 24, interrupted = 0;
    for (int k = 1; k <= attempts; k++) {
        double at = (double)rand_r(&seed) / ((double)RAND_MAX + 1);   /* a fraction of the run, in [0, 1) */
        pid_t pid = start_convert(src, dst);
        usleep((useconds_t)(full * 1e6 * at));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        struct stat st;
        if (stat(dst, &st) == 0) {
            /* the kill came after the folder was renamed into place (e.g. during exit): it must be whole */
            ck_assert_msg(test_ckpt(NULL, NULL, "verify '%s'", dst) == 0,
                          "a run killed at %.3f of its length left a broken %s (kill %d, seed %u)", at, dst, k, seed0);
            test_rmtree(dst);
        } else {
            interrupted += WIFSIGNALED(status);
        }
    }
    ck_assert_msg(interrupted * 2 >= attempts, "only %d of %d kills landed mid-run", interrupted, attempts);
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-310p", src, dst), 0);
    free(err);
    ck_assert_uint_eq(test_count_entries(dir), 2);   /* big.safetensors and out: no temporaries left */
    check_manifest_hashes(dst);
    test_rmtree(dir);
    free(src);
    free(dst);
    free(dir);
}
END_TEST

/* ---- the library interface ---- */

static int cancel_at_half(void *payload, uint64_t done, uint64_t total)
{
    int *calls = payload;
    ++*calls;
    return done * 2 >= total;
}

START_TEST(library_plan_and_cancel)
{
    char *sample = test_testdata("sample");
    char *dir = test_tmpdir();
    char *dst = test_join(dir, "out");
    ckpt_source *src = test_open(sample);
    ckpt_convert_options opts;
    ckpt_convert_options_default(&opts);
    opts.target = CKPT_TARGET_ASCEND_310P;
    opts.jobs = 1;
    opts.max_memory = 4096;
    ckpt_plan *plan;
    ckpt_error err;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, dst, &opts, &err), CKPT_OK);
    ck_assert_uint_eq(ckpt_plan_entry_count(plan), 21);
    ck_assert_uint_eq(ckpt_plan_shard_count(plan), 1);
    ck_assert_str_eq(ckpt_plan_shard_name(plan, 0), "model-00001-of-00001.safetensors");
    const ckpt_plan_entry *e = ckpt_plan_entry_at(plan, 2);
    ck_assert_str_eq(e->name, "model.layers.0.self_attn.q_proj.weight");
    ck_assert_int_eq(e->layout, CKPT_LAYOUT_ND);
    ck_assert_int_eq(e->dtype, CKPT_DTYPE_F16);
    int calls = 0;
    int rc = ckpt_plan_execute(plan, cancel_at_half, &calls, NULL, &err);
    ck_assert_msg(rc == CKPT_ERR_CANCELLED, "%d: %s", rc, err.message);
    ck_assert_int_gt(calls, 1);
    ck_assert_uint_eq(test_count_entries(dir), 0);
    ckpt_convert_stats stats;
    ck_assert_int_eq(ckpt_plan_execute(plan, NULL, NULL, &stats, &err), CKPT_OK);
    ck_assert_uint_eq(stats.tensors, 21);
    ck_assert_uint_eq(stats.bytes_in, 261504);
    ck_assert_uint_eq(test_count_entries(dir), 1);
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(dst);
    free(dir);
    free(sample);
}
END_TEST

/* Cuts the source file to a quarter once a quarter of the conversion is done (once). */
struct shrinker {
    const char *path;
    int truncated;
};

static int truncate_at_quarter(void *payload, uint64_t done, uint64_t total)
{
    struct shrinker *s = payload;
    if (!s->truncated && done * 4 >= total) {
        struct stat st;
        ck_assert_int_eq(stat(s->path, &st), 0);
        ck_assert_int_eq(truncate(s->path, st.st_size / 4), 0);
        s->truncated = 1;
    }
    return 0;
}

/* A source file that shrinks mid-run is an error naming the file and a tensor, not SIGBUS; nothing is left. */
START_TEST(source_truncated_while_converting)
{
    char *dir = test_tmpdir();
    char *src_path = make_big_source(dir);
    char *dst = test_join(dir, "out");
    ckpt_source *src = test_open(src_path);
    ckpt_convert_options opts;
    ckpt_convert_options_default(&opts);
    opts.target = CKPT_TARGET_ASCEND_310P;
    opts.jobs = 1;
    opts.max_memory = 1 << 20;
    ckpt_plan *plan;
    ckpt_error err;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, dst, &opts, &err), CKPT_OK);
    struct shrinker s = {src_path, 0};
    int rc = ckpt_plan_execute(plan, truncate_at_quarter, &s, NULL, &err);
    ck_assert(s.truncated);
    ck_assert_msg(rc == CKPT_ERR_READ, "%d: %s", rc, err.message);
    /* the worker reading tensor w or the thread hashing the source for the manifest meets the cut first */
    ck_assert_msg(strstr(err.message, "big.safetensors") &&
                      (strstr(err.message, "truncated while reading tensor w") ||
                       strstr(err.message, "truncated while hashing it")),
                  "%s", err.message);
    ck_assert_uint_eq(test_count_entries(dir), 1);   /* big.safetensors only: no DST, no temporary */
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(dst);
    free(src_path);
    free(dir);
}
END_TEST

/* Appends each FIDELITY finding's figures to a text, in the order they come (one job: plan order). */
static int note_fidelity(void *payload, const ckpt_finding *f)
{
    char *text = payload, line[512];
    if (f->check == CKPT_CHECK_FIDELITY) {
        snprintf(line, sizeof line, "%s %d %.17g %.17g %llu %llu %llu %llu\n", f->tensor, f->ok, f->max_abs_error,
                 f->max_rel_error, (unsigned long long)f->mismatched, (unsigned long long)f->counts.overflowed,
                 (unsigned long long)f->counts.subnormal, (unsigned long long)f->counts.flushed);
        strncat(text, line, 65536 - strlen(text) - 1);
    }
    return 0;
}

/*
 * NZ matrices are built in panels of column blocks when the memory does not
 * hold them whole (stream.c): with 4 KiB, the sample's 64 x 64 matrices take
 * one 16-column panel per pass, each pass reading the rows again.  The bytes,
 * the manifest (cast counts included, counted once) and verify --against's
 * findings must be those of the whole-matrix run.
 */
START_TEST(nz_in_panels_is_the_whole_matrix_run)
{
    char *sample = test_testdata("sample");
    char *dir = test_tmpdir();
    char *whole = test_join(dir, "whole"), *panels = test_join(dir, "panels");
    char *err = NULL;
    int rc = test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-310p --nz all --quiet", sample, whole);
    ck_assert_msg(rc == 0, "%s", err);
    free(err);
    rc = test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-310p --nz all --quiet --max-memory 4096", sample,
                   panels);
    ck_assert_msg(rc == 0, "%s", err);
    free(err);
    static const char *files[] = {"model-00001-of-00001.safetensors", "ckpt-manifest.json"};
    for (size_t i = 0; i < 2; i++) {
        char *a = test_join(whole, files[i]), *b = test_join(panels, files[i]);
        size_t na, nb;
        uint8_t *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
        ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s differs", files[i]);
        free(x);
        free(y);
        free(a);
        free(b);
    }
    char *found[2];
    for (int k = 0; k < 2; k++) {
        ckpt_verify_options opts;
        ckpt_verify_options_default(&opts);
        opts.against = sample;
        opts.jobs = 1;
        opts.max_memory = k ? 4096 : 0;
        ckpt_error e;
        found[k] = calloc(1, 65536);
        ck_assert_int_eq(ckpt_verify(panels, &opts, note_fidelity, found[k], NULL, &e), CKPT_OK);
        ck_assert_ptr_nonnull(strstr(found[k], "q_proj"));
    }
    ck_assert_str_eq(found[0], found[1]);
    free(found[0]);
    free(found[1]);
    test_rmtree(dir);
    free(whole);
    free(panels);
    free(dir);
    free(sample);
}
END_TEST

static Suite *convert_suite(void)
{
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("convert");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, convert_nd_is_identity);
    tcase_add_test(tc, convert_310p_values_and_layout);
    tcase_add_test(tc, convert_nz_device_image);
    tcase_add_test(tc, fp32_nz_needs_a_c0);
    tcase_add_test(tc, convert_910b_keeps_bf16_and_rules_apply);
    tcase_add_test(tc, dry_run_writes_nothing);
    tcase_add_test(tc, existing_destination_refused);
    tcase_add_test(tc, usage_and_input_errors);
    tcase_add_test(tc, fp8_weights_are_dequantized);
    tcase_add_test(tc, killed_conversion_leaves_nothing);
    tcase_add_test(tc, source_truncated_while_converting);
    tcase_add_test(tc, nz_in_panels_is_the_whole_matrix_run);
    tcase_add_test(tc, library_plan_and_cancel);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(convert_suite());
}
