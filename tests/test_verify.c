/*
 * test_verify.c: `ckpt verify` and `ckpt diff` catch each way a converted
 * folder goes bad, name the file and the tensor, and exit 1; intact folders
 * exit 0.  JUnit output is checked with a real XML parser (xmllint).
 */
#include "helpers.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHARD1 "model-00001-of-00003.safetensors"
#define SHARD2 "model-00002-of-00003.safetensors"

/* A fresh 310P device image (--nz all) of the sample in three shards; returns the folder. */
static char *fresh_output(void)
{
    char *dir = test_tmpdir();
    char *dst = test_join(dir, "out");
    char *sample = test_testdata("sample");
    char *err;
    int rc = test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-310p --nz all --max-shard-size 100000", sample,
                        dst);
    ck_assert_msg(rc == 0, "convert: %s", err);
    free(err);
    free(sample);
    free(dir);
    return dst;
}

static void drop_output(char *dst)
{
    *strrchr(dst, '/') = '\0';
    test_rmtree(dst);
    free(dst);
}

/* Runs verify; returns the exit status and the stdout. */
static int verify(const char *dst, const char *extra, char **out)
{
    return test_ckpt(out, NULL, "verify '%s' %s", dst, extra ? extra : "");
}

static void expect_caught(const char *dst, const char *what, const char *needle1, const char *needle2)
{
    char *out;
    int rc = verify(dst, NULL, &out);
    ck_assert_msg(rc == 1, "%s: verify exited %d:\n%s", what, rc, out);
    ck_assert_msg(strstr(out, needle1) != NULL, "%s: output lacks '%s':\n%s", what, needle1, out);
    if (needle2)
        ck_assert_msg(strstr(out, needle2) != NULL, "%s: output lacks '%s':\n%s", what, needle2, out);
    free(out);
}

static char *path_in(const char *dst, const char *name)
{
    return test_join(dst, name);
}

/* Offset in the file of tensor `name`'s bytes, from the manifest and the header length. */
static uint64_t tensor_file_offset(const char *dst, const char *name)
{
    char *m = path_in(dst, "ckpt-manifest.json");
    json_t *doc = json_load_file(m, 0, NULL);
    size_t i;
    json_t *t;
    uint64_t offset = 0;
    const char *file = NULL;
    json_array_foreach(json_object_get(doc, "tensors"), i, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
            offset = (uint64_t)json_integer_value(json_object_get(t, "offset"));
            file = json_string_value(json_object_get(t, "file"));
            break;
        }
    }
    ck_assert_ptr_nonnull(file);
    char *p = path_in(dst, file);
    size_t n;
    uint8_t *bytes = test_read_file(p, &n);
    uint64_t header = 0;
    for (int k = 7; k >= 0; k--)
        header = header << 8 | bytes[k];
    free(bytes);
    free(p);
    json_decref(doc);
    free(m);
    return 8 + header + offset;
}

static void flip_bit(const char *path, uint64_t offset)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, (long)offset, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)offset, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

START_TEST(intact_folder_passes)
{
    char *dst = fresh_output();
    char *out;
    ck_assert_int_eq(verify(dst, NULL, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "0 failed"));
    free(out);
    ck_assert_int_eq(verify(dst, "--json", &out), 0);
    json_t *doc = json_loads(out, 0, NULL);
    ck_assert(json_is_true(json_object_get(doc, "ok")));
    ck_assert_int_gt(json_integer_value(json_object_get(doc, "checks")), 21 * 2);
    json_decref(doc);
    free(out);
    drop_output(dst);
}
END_TEST

/* Progress as the library tells it: never backwards, ending at the total; a non-zero return cancels. */
struct progress_log {
    uint64_t calls, last, total;
    int backwards, cancel_after;
};

static int log_progress(void *payload, uint64_t done, uint64_t total)
{
    struct progress_log *p = payload;
    p->backwards |= done < p->last;
    p->last = done;
    p->total = total;
    return p->cancel_after && ++p->calls >= (uint64_t)p->cancel_after;
}

START_TEST(progress_reaches_the_total)
{
    char *dst = fresh_output(), *sample = test_testdata("sample");
    ckpt_source *out = test_open(dst);
    uint64_t files = 0, tensors = 0;
    char *manifest = test_join(dst, "ckpt-manifest.json");
    json_t *m = json_load_file(manifest, 0, NULL), *e;
    size_t i;
    json_array_foreach(json_object_get(m, "files"), i, e)
        files += (uint64_t)json_integer_value(json_object_get(e, "size"));
    json_array_foreach(json_object_get(m, "tensors"), i, e)
        tensors += (uint64_t)json_integer_value(json_object_get(e, "nbytes"));
    json_decref(m);
    ckpt_source_free(out);
    ckpt_verify_options o;
    ckpt_verify_options_default(&o);
    struct progress_log p = {0};
    o.progress = log_progress;
    o.progress_payload = &p;
    ck_assert_int_eq(ckpt_verify(dst, &o, NULL, NULL, NULL, NULL), CKPT_OK);
    ck_assert(!p.backwards);
    ck_assert_uint_eq(p.total, files);
    ck_assert_uint_eq(p.last, files);
    o.against = sample;
    p = (struct progress_log){0};
    ck_assert_int_eq(ckpt_verify(dst, &o, NULL, NULL, NULL, NULL), CKPT_OK);
    ck_assert(!p.backwards);
    ck_assert_uint_eq(p.total, files + tensors);
    ck_assert_uint_eq(p.last, files + tensors);
    p = (struct progress_log){.cancel_after = 1};
    ckpt_error err;
    ck_assert_int_eq(ckpt_verify(dst, &o, NULL, NULL, NULL, &err), CKPT_ERR_CANCELLED);
    ck_assert_uint_lt(p.last, files + tensors);
    free(manifest);
    free(sample);
    drop_output(dst);
}
END_TEST

START_TEST(flipped_bit_names_tensor)
{
    char *dst = fresh_output();
    const char *name = "model.layers.0.mlp.up_proj.weight";
    char *m = path_in(dst, "ckpt-manifest.json");
    json_t *doc = json_load_file(m, 0, NULL);
    size_t i;
    json_t *t;
    const char *file = NULL;
    json_array_foreach(json_object_get(doc, "tensors"), i, t)
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
            file = json_string_value(json_object_get(t, "file"));
    char *shard = path_in(dst, file);
    flip_bit(shard, tensor_file_offset(dst, name) + 100);
    char needle[256];
    snprintf(needle, sizeof needle, "%s: tensor %s: stored bytes changed", file, name);
    expect_caught(dst, "flipped bit", needle, NULL);
    free(shard);
    json_decref(doc);
    free(m);
    drop_output(dst);
}
END_TEST

START_TEST(truncated_shard)
{
    char *dst = fresh_output();
    char *shard = path_in(dst, SHARD1);
    ck_assert_int_eq(truncate(shard, 50000), 0);
    expect_caught(dst, "truncated shard", SHARD1 ": 50000 bytes, the manifest says", "(truncated)");
    free(shard);
    drop_output(dst);
}
END_TEST

START_TEST(missing_shard)
{
    char *dst = fresh_output();
    char *shard = path_in(dst, SHARD2);
    ck_assert_int_eq(unlink(shard), 0);
    expect_caught(dst, "missing shard", SHARD2 ": missing", "is gone with its file");
    free(shard);
    drop_output(dst);
}
END_TEST

START_TEST(extra_file)
{
    char *dst = fresh_output();
    char *extra = path_in(dst, "stray.bin");
    test_write_file(extra, "x", 1);
    expect_caught(dst, "extra file", "stray.bin: not listed in the manifest", NULL);
    free(extra);
    drop_output(dst);
}
END_TEST

/* Rewrites `old` as `new` (same length) in a file. */
static void patch(const char *path, const char *old, const char *new_text)
{
    size_t n;
    uint8_t *bytes = test_read_file(path, &n);
    uint8_t *at = memmem(bytes, n, old, strlen(old));
    ck_assert_msg(at != NULL, "'%s' not in %s", old, path);
    memcpy(at, new_text, strlen(new_text));
    test_write_file(path, bytes, n);
    free(bytes);
}

START_TEST(edited_header)
{
    char *dst = fresh_output();
    char *shard = path_in(dst, SHARD1);
    /* the embedding is stored first: make its dtype claim BF16 instead of F16 */
    patch(shard, "\"dtype\":\"F16\"", "\"dtype\":\"I16\"");
    expect_caught(dst, "edited header", "has another dtype in the shard header", SHARD1 ": checksum");
    free(shard);
    drop_output(dst);
}
END_TEST

START_TEST(swapped_shards)
{
    char *dst = fresh_output();
    char *a = path_in(dst, SHARD1), *b = path_in(dst, SHARD2), *t = path_in(dst, "tmp");
    ck_assert_int_eq(rename(a, t), 0);
    ck_assert_int_eq(rename(b, a), 0);
    ck_assert_int_eq(rename(t, b), 0);
    expect_caught(dst, "swapped shards", SHARD1 ": ", "is missing from the shard header");
    free(a);
    free(b);
    free(t);
    drop_output(dst);
}
END_TEST

/* The manifest is re-signed to match an edited shard, but the header still disagrees. */
START_TEST(manifest_edited_to_match)
{
    char *dst = fresh_output();
    char *shard = path_in(dst, SHARD1), *m = path_in(dst, "ckpt-manifest.json");
    size_t n;
    uint8_t *before = test_read_file(shard, &n);
    char old_hash[33], new_hash[33];
    test_xxh128_hex(before, n, old_hash);
    free(before);
    patch(shard, "\"shape\":[4,20,16,16]", "\"shape\":[20,4,16,16]");   /* the embeddings tiles */
    uint8_t *after = test_read_file(shard, &n);
    test_xxh128_hex(after, n, new_hash);
    free(after);
    patch(m, old_hash, new_hash);
    expect_caught(dst, "re-signed manifest", "has another shape in the shard header", NULL);
    free(shard);
    free(m);
    drop_output(dst);
}
END_TEST

START_TEST(unreadable_manifest_exits_3)
{
    char *dst = fresh_output();
    char *m = path_in(dst, "ckpt-manifest.json");
    test_write_file(m, "{\"manifest_version\": 1, \"files\": [{\"path\": \"../../etc/passwd\"", 60);
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "verify '%s'", dst), 3);
    ck_assert_ptr_nonnull(strstr(err, "ckpt-manifest.json"));
    free(err);
    const char *escape = "{\"manifest_version\": 1, \"target\": \"nd\", \"options\": {\"nz\": \"auto\", \"overflow\": "
                         "\"inf\", \"max_shard_bytes\": 1}, \"files\": [{\"path\": \"../x\", \"size\": 1, \"xxh3_128\": "
                         "\"00000000000000000000000000000000\"}], \"tensors\": []}";
    test_write_file(m, escape, strlen(escape));
    ck_assert_int_eq(test_ckpt(NULL, &err, "verify '%s'", dst), 3);
    ck_assert_ptr_nonnull(strstr(err, "plain path"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "verify /nonexistent"), 3);
    free(err);
    free(m);
    drop_output(dst);
}
END_TEST

/* ---- fidelity ---- */

/* Replaces a tensor's stored bytes with `bytes`, then re-signs the file and tensor in the manifest. */
static void forge(const char *dst, const char *name, const uint8_t *bytes, size_t len)
{
    char *m = path_in(dst, "ckpt-manifest.json");
    json_t *doc = json_load_file(m, 0, NULL);
    size_t i;
    json_t *t, *f;
    const char *file = NULL;
    json_array_foreach(json_object_get(doc, "tensors"), i, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
            char hex[33];
            test_xxh128_hex(bytes, len, hex);
            json_object_set_new(t, "xxh3_128", json_string(hex));
            file = json_string_value(json_object_get(t, "file"));
        }
    }
    char *shard = path_in(dst, file);
    uint64_t at = tensor_file_offset(dst, name);
    size_t n;
    uint8_t *data = test_read_file(shard, &n);
    memcpy(data + at, bytes, len);
    test_write_file(shard, data, n);
    json_array_foreach(json_object_get(doc, "files"), i, f) {
        if (strcmp(json_string_value(json_object_get(f, "path")), file) == 0) {
            char hex[33];
            test_xxh128_hex(data, n, hex);
            json_object_set_new(f, "xxh3_128", json_string(hex));
        }
    }
    free(data);
    ck_assert_int_eq(json_dump_file(doc, m, 0), 0);
    json_decref(doc);
    free(shard);
    free(m);
}

/*
 * A quantized folder: verify --against reports each int8 weight's error and
 * SQNR (text, JSON, JUnit); one code moved by one step, checksums forged to
 * match, is caught; diff against the source compares the dequantized values.
 */
START_TEST(against_a_quantized_folder)
{
    char *dir = test_tmpdir(), *dst = test_join(dir, "q"), *sample = test_testdata("sample"), *out, *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s' --target ascend-910b --quant w8a8-dynamic --quiet",
                               sample, dst), 0);
    free(err);
    char *args = malloc(strlen(sample) + strlen(dir) + 64);
    sprintf(args, "--against '%s' --json", sample);
    ck_assert_int_eq(verify(dst, args, &out), 0);
    json_t *doc = json_loads(out, 0, NULL), *f;
    size_t i, weights = 0;
    json_array_foreach(json_object_get(doc, "findings"), i, f) {
        if (!json_object_get(f, "quant"))
            continue;
        weights++;
        ck_assert_str_eq(json_string_value(json_object_get(f, "quant")), "W8A8_DYNAMIC");
        double sqnr = json_real_value(json_object_get(f, "sqnr_db"));
        double abs_err = json_real_value(json_object_get(f, "max_abs_error"));
        /* 8-bit codes over about 4 sigma of a Gaussian: near 6 dB a bit, and never more than half a step off */
        ck_assert_msg(sqnr > 35 && sqnr < 50, "SQNR %g", sqnr);
        ck_assert_msg(abs_err > 0 && abs_err < 0.002, "max error %g", abs_err);
    }
    ck_assert_uint_eq(weights, 14);   /* q, k, v, o, gate, up, down of 2 layers; not their scales */
    json_decref(doc);
    free(out);
    sprintf(args, "--against '%s' --junit '%s/j.xml'", sample, dir);
    ck_assert_int_eq(verify(dst, args, &out), 0);
    free(out);
    char *junit = test_join(dir, "j.xml");
    size_t n;
    char *xml = (char *)test_read_file(junit, &n);
    static const char prop[] = "<property name=\"sqnr_db\" value=\"";
    ck_assert_ptr_nonnull(memmem(xml, n, prop, sizeof prop - 1));
    free(xml);
    free(junit);
    const char *name = "model.layers.0.mlp.up_proj.weight";
    ckpt_source *q = test_open(dst);
    const ckpt_tensor *t;
    uint8_t *codes = test_read_tensor(q, name, &t);
    codes[100] = codes[100] == 127 ? 126 : codes[100] + 1;
    forge(dst, name, codes, t->nbytes);
    ckpt_source_free(q);
    free(codes);
    ck_assert_int_eq(verify(dst, NULL, &out), 0);   /* the checksums agree */
    free(out);
    sprintf(args, "--against '%s'", sample);
    ck_assert_int_eq(verify(dst, args, &out), 1);
    ck_assert_msg(strstr(out, "tensor model.layers.0.mlp.up_proj.weight: 1 elements differ"), "%s", out);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' -v", sample, dst), 1);
    ck_assert_msg(strstr(out, "BF16 -> W8A8_DYNAMIC int8") && strstr(out, "SQNR"), "%s", out);
    ck_assert_msg(strstr(out, "quantization parameter of model.layers.1.self_attn.q_proj.weight"), "%s", out);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' --max-abs-error 0.002", sample, dst), 0);
    free(out);
    free(args);
    free(sample);
    free(dst);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(against_passes_on_correct_conversion)
{
    char *dst = fresh_output();
    char *sample = test_testdata("sample");
    char *out, *args = malloc(strlen(sample) + 64);
    sprintf(args, "--against '%s' --json", sample);
    ck_assert_int_eq(verify(dst, args, &out), 0);
    json_t *doc = json_loads(out, 0, NULL);
    size_t i, fidelity = 0;
    json_t *f;
    json_array_foreach(json_object_get(doc, "findings"), i, f) {
        if (strcmp(json_string_value(json_object_get(f, "check")), "fidelity") != 0)
            continue;
        fidelity++;
        ck_assert_int_eq(json_integer_value(json_object_get(f, "mismatched")), 0);
        /* bf16 -> f16 keeps these values to within half an f16 step */
        ck_assert(json_real_value(json_object_get(f, "max_abs_error")) < 1e-3);
    }
    ck_assert_uint_eq(fidelity, 21);
    json_decref(doc);
    free(out);
    free(args);
    free(sample);
    drop_output(dst);
}
END_TEST

/* What a caller of the library sees of the options: each reported with its origin, a differing one failing. */
struct option_log {
    int options, failed, given;
    char failed_name[32];
};

static int log_options(void *payload, const ckpt_finding *f)
{
    struct option_log *l = payload;
    if (f->check != CKPT_CHECK_OPTION)
        return 0;
    l->options++;
    l->given += f->origin && strcmp(f->origin, "options") == 0;
    if (!f->ok) {
        l->failed++;
        snprintf(l->failed_name, sizeof l->failed_name, "%s", f->option);
    }
    return 0;
}

START_TEST(against_with_conversion_options)
{
    char *dst = fresh_output();
    char *sample = test_testdata("sample");
    ckpt_convert_options c;
    ckpt_convert_options_default(&c);
    c.target = CKPT_TARGET_ASCEND_310P;
    c.nz = CKPT_NZ_ALL;
    c.max_shard_bytes = 100000;
    ckpt_verify_options o;
    ckpt_verify_options_default(&o);
    o.against = sample;
    o.convert = &c;
    ckpt_error err;
    struct option_log l = {0};
    ck_assert_int_eq(ckpt_verify(dst, &o, log_options, &l, NULL, &err), CKPT_OK);
    ck_assert_int_eq(l.options, 9);   /* target dtype quant nz nz_fp32_c0 overflow rename rules max_shard_size */
    ck_assert_int_eq(l.given, 9);
    ck_assert_int_eq(l.failed, 0);

    /* a caller built against an older, smaller struct: the fields it lacks keep their defaults */
    c.size = offsetof(ckpt_convert_options, quant);
    l = (struct option_log){0};
    ck_assert_int_eq(ckpt_verify(dst, &o, log_options, &l, NULL, &err), CKPT_OK);
    c.size = sizeof c + 8;   /* a newer one: refused */
    ck_assert_int_eq(ckpt_verify(dst, &o, log_options, &l, NULL, &err), CKPT_ERR_ARG);
    c.size = sizeof c;

    c.nz = CKPT_NZ_NONE;
    l = (struct option_log){0};
    ck_assert_int_eq(ckpt_verify(dst, &o, log_options, &l, NULL, &err), CKPT_ERR_MISMATCH);
    ck_assert_int_eq(l.failed, 1);
    ck_assert_str_eq(l.failed_name, "nz");

    c.target = CKPT_TARGET_NONE;
    ck_assert_int_eq(ckpt_verify(dst, &o, log_options, &l, NULL, &err), CKPT_ERR_ARG);

    o.convert = NULL;   /* the manifest's, reported as such */
    l = (struct option_log){0};
    ck_assert_int_eq(ckpt_verify(dst, &o, log_options, &l, NULL, &err), CKPT_OK);
    ck_assert_int_eq(l.options, 9);
    ck_assert_int_eq(l.given, 0);
    free(sample);
    drop_output(dst);
}
END_TEST

/* A plain ND copy of an NZ tensor has the right values in the wrong layout: checksums match, fidelity fails. */
START_TEST(against_catches_wrong_layout_and_cast)
{
    char *dst = fresh_output();
    char *sample = test_testdata("sample");
    const char *name = "model.layers.1.self_attn.q_proj.weight";   /* [64, 64]: NZ and ND sizes agree */
    ckpt_source *src = test_open(sample);
    const ckpt_tensor *t;
    uint8_t *x = test_read_tensor(src, name, &t);
    uint16_t *as_f16 = malloc(64 * 64 * 2);
    for (int k = 0; k < 64 * 64; k++) {
        uint16_t h;
        memcpy(&h, x + 2 * k, 2);
        uint32_t bits = (uint32_t)h << 16;
        float v;
        memcpy(&v, &bits, 4);
        _Float16 half = (_Float16)v;
        memcpy(&as_f16[k], &half, 2);
    }
    forge(dst, name, (uint8_t *)as_f16, 64 * 64 * 2);   /* right values, ND instead of NZ */
    char *out, *args = malloc(strlen(sample) + 64);
    sprintf(args, "--against '%s'", sample);
    ck_assert_int_eq(verify(dst, NULL, &out), 0);          /* the checksums were forged to match */
    free(out);
    ck_assert_int_eq(verify(dst, args, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "tensor model.layers.1.self_attn.q_proj.weight:"));
    ck_assert_ptr_nonnull(strstr(out, "differ from converting the source"));
    free(out);
    /* a wrong cast: truncation instead of rounding, in an ND tensor */
    const char *norm = "model.norm.weight";
    uint8_t *y = test_read_tensor(src, norm, NULL);
    uint16_t trunc[64];
    for (int k = 0; k < 64; k++) {
        uint16_t h;
        memcpy(&h, y + 2 * k, 2);
        uint32_t bits = (uint32_t)h << 16;
        float v;
        memcpy(&v, &bits, 4);
        _Float16 half = (_Float16)v;
        memcpy(&trunc[k], &half, 2);
        trunc[k] ^= 1;   /* off by one unit in the last place */
    }
    forge(dst, norm, (uint8_t *)trunc, sizeof trunc);
    ck_assert_int_eq(verify(dst, args, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "tensor model.norm.weight: 64 elements differ"));
    free(out);
    free(y);
    free(x);
    free(as_f16);
    free(args);
    ckpt_source_free(src);
    free(sample);
    drop_output(dst);
}
END_TEST

START_TEST(junit_is_well_formed)
{
    char *dst = fresh_output();
    char *shard = path_in(dst, SHARD1);
    flip_bit(shard, 3000);
    char *xml = test_join(dst, "../report.xml");
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "verify '%s' --junit '%s'", dst, xml), 1);
    free(out);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", xml);
    ck_assert_int_eq(system(cmd), 0);
    size_t n;
    char *text = (char *)test_read_file(xml, &n);
    ck_assert_ptr_nonnull(memmem(text, n, "<failure message=", 17));
    ck_assert_ptr_nonnull(memmem(text, n, "<testsuite name=\"ckpt verify\"", 29));
    free(text);
    free(xml);
    free(shard);
    drop_output(dst);
}
END_TEST

START_TEST(diff_reports_differences)
{
    char *dst = fresh_output();
    char *sample = test_testdata("sample");
    char *out;
    /* the sample against itself */
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", sample, sample), 0);
    free(out);
    /* a bf16 source and its f16 NZ conversion: same logical shapes, values within f16 rounding */
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' --names-only", sample, dst), 1);
    ck_assert_ptr_nonnull(strstr(out, "BF16 -> F16"));
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' --max-abs-error 0.001", sample, dst), 0);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' --json", sample, dst), 1);
    json_t *doc = json_loads(out, 0, NULL);
    ck_assert(json_is_false(json_object_get(doc, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "checks")), 21);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "bytes")), 2 * 261504);   /* both sides, read whole */
    json_decref(doc);
    free(out);
    /* a tensor only in one */
    char *ext = test_external("mlverse/hello.safetensors");
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", ext, sample), 1);
    ck_assert_ptr_nonnull(strstr(out, "hello: only in"));
    free(out);
    free(ext);
    free(sample);
    drop_output(dst);
}
END_TEST

/* Writes one F32 [rows, cols] tensor "w" holding i * 0.25 at flat index i, then the given changes. */
static char *write_matrix(const char *dir, const char *file, uint64_t rows, uint64_t cols, const uint64_t *at,
                          const float *delta, size_t changes)
{
    char *path = test_join(dir, file);
    uint64_t shape[2] = {rows, cols}, n = rows * cols;
    float *v = malloc(n * sizeof *v);
    for (uint64_t i = 0; i < n; i++)
        v[i] = (float)(i % 4096) * 0.25f;
    for (size_t k = 0; k < changes; k++)
        v[at[k]] += delta[k];
    ckpt_tensor t = {"w", CKPT_DTYPE_F32, 2, shape, n * sizeof *v, 0, NULL};
    ckpt_writer *w;
    ck_assert_int_eq(ckpt_writer_open(&w, path, &t, 1, NULL, 0, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, v, n * sizeof *v, NULL), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, NULL), CKPT_OK);
    ckpt_writer_free(w);
    free(v);
    return path;
}

START_TEST(diff_streams_large_tensors)
{
    /* 16 MiB: compared in two blocks of rows; the changes sit in the first row, the second block and the end */
    char *dir = test_tmpdir();
    uint64_t rows = 4096, cols = 1024, at[] = {5, 3000 * 1024 + 7, 4096 * 1024 - 1};
    char *a = write_matrix(dir, "a.safetensors", rows, cols, NULL, NULL, 0);
    char *b = write_matrix(dir, "b.safetensors", rows, cols, at, (float[]){0.5f, 2.0f, -1.0f}, 3);
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", a, a), 0);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' --json", a, b), 1);
    json_t *doc = json_loads(out, 0, NULL);
    json_t *f = json_array_get(json_object_get(doc, "findings"), 0);
    ck_assert_msg(f, "%s", out);
    ck_assert_int_eq(json_integer_value(json_object_get(f, "mismatched")), 3);
    ck_assert(json_real_value(json_object_get(f, "max_abs_error")) == 2.0);
    json_decref(doc);
    free(out);
    free(a);
    free(b);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* views.pt ties "tied" to "base"; its conversion stores base once: diff passes both ways, and
   fails when the other side lacks base too */
START_TEST(diff_counts_tied_weights_once)
{
    char *dir = test_tmpdir(), *views = test_testdata("torch/views.pt"), *dst = test_join(dir, "out");
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "convert '%s' '%s' --target nd --quiet", views, dst), 0);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s' -v", views, dst), 0);
    ck_assert_msg(strstr(out, "tied: tied to base, stored once in"), "%s", out);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", dst, views), 0);
    free(out);
    char *w = write_matrix(dir, "w.safetensors", 4, 6, NULL, NULL, 0);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s'", views, w), 1);
    ck_assert_msg(strstr(out, "tied: only in") && strstr(out, "base: only in"), "%s", out);
    free(out);
    free(w);
    free(views);
    free(dst);
    test_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *verify_suite(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("verify");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, intact_folder_passes);
    tcase_add_test(tc, progress_reaches_the_total);
    tcase_add_test(tc, flipped_bit_names_tensor);
    tcase_add_test(tc, truncated_shard);
    tcase_add_test(tc, missing_shard);
    tcase_add_test(tc, extra_file);
    tcase_add_test(tc, edited_header);
    tcase_add_test(tc, swapped_shards);
    tcase_add_test(tc, manifest_edited_to_match);
    tcase_add_test(tc, unreadable_manifest_exits_3);
    tcase_add_test(tc, against_passes_on_correct_conversion);
    tcase_add_test(tc, against_with_conversion_options);
    tcase_add_test(tc, against_catches_wrong_layout_and_cast);
    tcase_add_test(tc, against_a_quantized_folder);
    tcase_add_test(tc, junit_is_well_formed);
    tcase_add_test(tc, diff_reports_differences);
    tcase_add_test(tc, diff_streams_large_tensors);
    tcase_add_test(tc, diff_counts_tied_weights_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(verify_suite());
}
