/*
 * test_safetensors.c: the safetensors reader and writer.
 *
 * External files are checked against values computed independently with
 * numpy (first and last element, sequential sum).  Each rule of the
 * reference reader is exercised with a hostile file built here.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- building files ---- */

/* Writes u64 header length, `header` and `data_len` bytes of `data` (zeros when NULL). */
static void write_st(const char *path, const char *header, uint64_t claimed_len, const void *data, size_t data_len)
{
    size_t hlen = strlen(header);
    size_t total = 8 + hlen + data_len;
    uint8_t *buf = calloc(1, total);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(claimed_len >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (data)
        memcpy(buf + 8 + hlen, data, data_len);
    test_write_file(path, buf, total);
    free(buf);
}

/* Opens a file holding `header` + `data_len` zero bytes; returns the status and keeps the message. */
static int open_hostile(const char *header, size_t data_len, ckpt_error *err)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "x.safetensors");
    write_st(path, header, strlen(header), NULL, data_len);
    ckpt_source *src = NULL;
    int rc = ckpt_source_open(&src, path, NULL, err);
    ck_assert_msg(rc != CKPT_OK || src != NULL, "success without a source");
    if (rc == CKPT_OK)
        ckpt_source_free(src);
    else
        ck_assert_msg(strstr(err->message, "x.safetensors") != NULL, "message does not name the file: %s",
                      err->message);
    test_rmtree(dir);
    free(path);
    free(dir);
    return rc;
}

static void expect_refused(const char *header, size_t data_len, int code, const char *needle)
{
    ckpt_error err;
    int rc = open_hostile(header, data_len, &err);
    ck_assert_msg(rc == code, "expected status %d, got %d (%s) for %s", code, rc, rc ? err.message : "ok", header);
    ck_assert_msg(strstr(err.message, needle) != NULL, "message '%s' lacks '%s'", err.message, needle);
}

/* ---- external files ---- */

static double sum_f64(const uint8_t *p, size_t n)
{
    double s = 0, v;
    for (size_t i = 0; i < n; i++) {
        memcpy(&v, p + 8 * i, 8);
        s += v;
    }
    return s;
}

static int64_t sum_i64(const uint8_t *p, size_t n)
{
    int64_t s = 0, v;
    for (size_t i = 0; i < n; i++) {
        memcpy(&v, p + 8 * i, 8);
        s += v;
    }
    return s;
}

static void check_shape(const ckpt_tensor *t, ckpt_dtype dtype, uint32_t rank, const uint64_t *shape)
{
    ck_assert_int_eq(t->dtype, dtype);
    ck_assert_uint_eq(t->rank, rank);
    for (uint32_t d = 0; d < rank; d++)
        ck_assert_uint_eq(t->shape[d], shape[d]);
}

START_TEST(external_voices)
{
    char *path = test_external("candle/voices.safetensors");
    ckpt_source *src = test_open(path);
    ck_assert_str_eq(ckpt_source_format(src), "safetensors");
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 2);
    const ckpt_tensor *t;
    uint8_t *tokens = test_read_tensor(src, "tokens", &t);
    check_shape(t, CKPT_DTYPE_I64, 3, (uint64_t[]){1, 982, 33});
    ck_assert_int_eq(sum_i64(tokens, 982 * 33), 25768678);
    uint8_t *mask = test_read_tensor(src, "mask", &t);
    check_shape(t, CKPT_DTYPE_U8, 3, (uint64_t[]){1, 982, 33});
    uint64_t s = 0;
    for (size_t i = 0; i < 982 * 33; i++)
        s += mask[i];
    ck_assert_uint_eq(s, 24294);
    free(tokens);
    free(mask);
    ckpt_source_free(src);
    free(path);
}
END_TEST

START_TEST(external_jfk_codes)
{
    char *path = test_external("candle/jfk-codes.safetensors");
    ckpt_source *src = test_open(path);
    const ckpt_tensor *t;
    uint8_t *codes = test_read_tensor(src, "codes", &t);
    check_shape(t, CKPT_DTYPE_I64, 3, (uint64_t[]){1, 2, 828});
    int64_t first, last;
    memcpy(&first, codes, 8);
    memcpy(&last, codes + t->nbytes - 8, 8);
    ck_assert_int_eq(first, 865);
    ck_assert_int_eq(last, 889);
    ck_assert_int_eq(sum_i64(codes, 2 * 828), 960640);
    free(codes);
    ckpt_source_free(src);
    free(path);
}
END_TEST

START_TEST(external_safetensors_cpp_model)
{
    char *path = test_external("safetensors-cpp/model.safetensors");
    ckpt_source *src = test_open(path);
    const ckpt_tensor *t;
    uint8_t *w1 = test_read_tensor(src, "weight1", &t);
    check_shape(t, CKPT_DTYPE_F64, 2, (uint64_t[]){8, 8});
    double first;
    memcpy(&first, w1, 8);
    ck_assert_double_eq(first, 0.08001627472781947);
    ck_assert_double_eq(sum_f64(w1, 64), 31.741862223954204);
    uint8_t *w2 = test_read_tensor(src, "weight2", &t);
    check_shape(t, CKPT_DTYPE_F64, 2, (uint64_t[]){16, 16});
    ck_assert_double_eq(sum_f64(w2, 256), 126.67609970765008);
    free(w1);
    free(w2);
    ckpt_source_free(src);
    free(path);
}
END_TEST

START_TEST(external_mlverse_hello)
{
    char *path = test_external("mlverse/hello.safetensors");
    ckpt_source *src = test_open(path);
    const ckpt_tensor *t;
    uint8_t *hello = test_read_tensor(src, "hello", &t);
    check_shape(t, CKPT_DTYPE_F32, 2, (uint64_t[]){10, 10});
    for (size_t i = 0; i < 100; i++) {
        float v;
        memcpy(&v, hello + 4 * i, 4);
        ck_assert_float_eq(v, 1.0f);
    }
    uint8_t *world = test_read_tensor(src, "world", &t);
    check_shape(t, CKPT_DTYPE_F32, 2, (uint64_t[]){5, 10});
    for (size_t i = 0; i < 200; i++)
        ck_assert_uint_eq(world[i], 0);
    free(hello);
    free(world);
    ckpt_source_free(src);
    free(path);
}
END_TEST

START_TEST(external_abuse_refused)
{
    char *path = test_external("safetensors-cpp/safetensors_abuse_attempt_1.safetensors");
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open(&src, path, NULL, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_null(src);
    ck_assert_ptr_nonnull(strstr(err.message, "header claims 1000 bytes"));
    ck_assert_ptr_nonnull(strstr(err.message, "safetensors_abuse_attempt_1"));
    free(path);
}
END_TEST

/* bf16 is the top half of an f32: the inverse needs no rounding. */
static float bf16_to_f32(const uint8_t *p)
{
    uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

START_TEST(sample_golden_values)
{
    /* testdata/sample_golden.json, written by torch in testdata/make_sample.py */
    static const float embed[4] = {0.042724609375f, -0.006866455078125f, -0.083984375f, 0.002105712890625f};
    static const float head[4] = {-0.10595703125f, 0.003570556640625f, 0.0908203125f, -0.01806640625f};
    char *path = test_testdata("sample");
    ckpt_source *src = test_open(path);
    uint8_t *e = test_read_tensor(src, "model.embed_tokens.weight", NULL);
    uint8_t *h = test_read_tensor(src, "lm_head.weight", NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq(bf16_to_f32(e + 2 * i), embed[i]);
        ck_assert_float_eq(bf16_to_f32(h + 2 * i), head[i]);
    }
    free(e);
    free(h);
    ckpt_source_free(src);
    free(path);
}
END_TEST

/* ---- the reference reader's rules ---- */

START_TEST(rule_valid_minimal)
{
    ckpt_error err;
    ck_assert_int_eq(open_hostile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &err),
                     CKPT_OK);
}
END_TEST

START_TEST(rule_overlap)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
                   6, CKPT_ERR_FORMAT, "overlap");
}
END_TEST

START_TEST(rule_gap)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}",
                   10, CKPT_ERR_FORMAT, "gap");
}
END_TEST

START_TEST(rule_not_from_zero)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, CKPT_ERR_FORMAT, "gap");
}
END_TEST

START_TEST(rule_reversed_offsets)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                   "\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,2]}}",
                   4, CKPT_ERR_FORMAT, "");
}
END_TEST

START_TEST(rule_header_longer_than_file)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "x.safetensors");
    write_st(path, "{}", 1u << 20, NULL, 0);
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open(&src, path, NULL, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "header claims"));
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(rule_header_over_limit)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "x.safetensors");
    write_st(path, "{}", 100000001, NULL, 0);
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_open(&src, path, NULL, &err), CKPT_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err.message, "over the limit"));
    /* a caller may lower the limit */
    write_st(path, "{}      ", 8, NULL, 0);
    ckpt_limits limits;
    ckpt_limits_default(&limits);
    limits.max_header_bytes = 4;
    ck_assert_int_eq(ckpt_source_open(&src, path, &limits, &err), CKPT_ERR_LIMIT);
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(rule_short_file)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "x.safetensors");
    test_write_file(path, "\x02\0\0\0\0\0\0{", 8);
    ckpt_source *src = NULL;
    ckpt_error err;
    ck_assert_int_ne(ckpt_source_open(&src, path, NULL, &err), CKPT_OK);
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(rule_bad_utf8)
{
    expect_refused("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CKPT_ERR_FORMAT,
                   "invalid header JSON");
}
END_TEST

START_TEST(rule_invalid_json)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", 1, CKPT_ERR_FORMAT,
                   "invalid header JSON");
}
END_TEST

START_TEST(rule_not_starting_with_brace)
{
    expect_refused("[{\"a\":1}]", 0, CKPT_ERR_FORMAT, "does not start with '{'");
}
END_TEST

START_TEST(rule_duplicate_key)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                   "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                   2, CKPT_ERR_FORMAT, "duplicate");
}
END_TEST

START_TEST(rule_shape_overflow)
{
    /* 2^32 * 2^32 elements: the product wraps to 0 in 64 bits, which a careless reader accepts */
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                   CKPT_ERR_FORMAT, "overflows");
    /* element count fits, byte count does not */
    expect_refused("{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0,
                   CKPT_ERR_FORMAT, "overflows");
}
END_TEST

START_TEST(rule_size_mismatch)
{
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CKPT_ERR_FORMAT,
                   "need 8");
}
END_TEST

START_TEST(rule_unknown_dtype)
{
    expect_refused("{\"a\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CKPT_ERR_FORMAT,
                   "unknown dtype F7");
    expect_refused("{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, CKPT_ERR_UNSUPPORTED,
                   "unsupported dtype F4");
}
END_TEST

START_TEST(rule_trailing_bytes)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 5, CKPT_ERR_FORMAT,
                   "cover 4 bytes of a 5-byte");
}
END_TEST

START_TEST(rule_missing_bytes)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 3, CKPT_ERR_FORMAT, "");
}
END_TEST

START_TEST(rule_bad_fields)
{
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, CKPT_ERR_FORMAT,
                   "non-negative");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1, CKPT_ERR_FORMAT,
                   "non-negative");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, CKPT_ERR_FORMAT,
                   "data_offsets");
    expect_refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, CKPT_ERR_FORMAT, "needs dtype");
    expect_refused("{\"a\":7}", 0, CKPT_ERR_FORMAT, "not an object");
    expect_refused("{\"__metadata__\":{\"k\":1}}", 0, CKPT_ERR_FORMAT, "not a string");
}
END_TEST

START_TEST(rule_nesting_bomb)
{
    size_t depth = 100000;
    char *h = malloc(2 * depth + 16);
    size_t n = 0;
    n += (size_t)sprintf(h, "{\"a\":");
    for (size_t i = 0; i < depth; i++)
        h[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        h[n++] = ']';
    h[n++] = '}';
    h[n] = '\0';
    expect_refused(h, 0, CKPT_ERR_FORMAT, "invalid header JSON");
    free(h);
}
END_TEST

START_TEST(rule_rank_limit)
{
    char h[1024];
    int n = sprintf(h, "{\"a\":{\"dtype\":\"U8\",\"shape\":[");
    for (int i = 0; i < 65; i++)
        n += sprintf(h + n, "%s1", i ? "," : "");
    sprintf(h + n, "],\"data_offsets\":[0,1]}}");
    expect_refused(h, 1, CKPT_ERR_LIMIT, "rank 65");
}
END_TEST

START_TEST(metadata_and_empty_tensors)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "m.safetensors");
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},\"e\":{\"dtype\":\"BF16\",\"shape\":[0,3],"
                    "\"data_offsets\":[0,0]},\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}";
    write_st(path, h, strlen(h), "\x2a\0\0\0", 4);
    ckpt_source *src = test_open(path);
    ck_assert_uint_eq(ckpt_source_metadata_count(src), 1);
    const char *k, *v;
    ckpt_source_metadata(src, 0, &k, &v);
    ck_assert_str_eq(k, "format");
    ck_assert_str_eq(v, "pt");
    const ckpt_tensor *t;
    uint8_t *s = test_read_tensor(src, "s", &t);
    ck_assert_uint_eq(t->rank, 0);
    ck_assert_uint_eq(ckpt_tensor_rows(t), 1);
    ck_assert_uint_eq(s[0], 42);
    uint8_t *e = test_read_tensor(src, "e", &t);
    ck_assert_uint_eq(t->nbytes, 0);
    free(s);
    free(e);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(read_row_ranges)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "r.safetensors");
    uint16_t data[4 * 3];
    for (int i = 0; i < 12; i++)
        data[i] = (uint16_t)(100 + i);
    const char *h = "{\"m\":{\"dtype\":\"I16\",\"shape\":[4,3],\"data_offsets\":[0,24]}}";
    write_st(path, h, strlen(h), data, sizeof data);
    ckpt_source *src = test_open(path);
    uint16_t rows[6];
    ckpt_error err;
    ck_assert_int_eq(ckpt_source_read(src, 0, 1, 2, rows, sizeof rows, &err), CKPT_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(rows[i], 103 + i);
    ck_assert_int_eq(ckpt_source_read(src, 0, 3, 2, rows, sizeof rows, &err), CKPT_ERR_ARG);
    ck_assert_int_eq(ckpt_source_read(src, 0, 0, 3, rows, sizeof rows, &err), CKPT_ERR_ARG);
    ck_assert_int_eq(ckpt_source_read(src, 0, UINT64_MAX, 2, rows, sizeof rows, &err), CKPT_ERR_ARG);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- shard folders ---- */

static const char *shard_a = "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                             "\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}";
static const char *shard_b = "{\"y\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}";

static char *make_shards(void)
{
    char *dir = test_tmpdir();
    char *a = test_join(dir, "model-00001-of-00002.safetensors");
    char *b = test_join(dir, "model-00002-of-00002.safetensors");
    write_st(a, shard_a, strlen(shard_a), "\x01\x02", 2);
    write_st(b, shard_b, strlen(shard_b), "\x03\x04\x05", 3);
    free(a);
    free(b);
    return dir;
}

static void write_index(const char *dir, const char *json)
{
    char *p = test_join(dir, "model.safetensors.index.json");
    test_write_file(p, json, strlen(json));
    free(p);
}

static int open_dir(const char *dir, ckpt_error *err)
{
    ckpt_source *src = NULL;
    int rc = ckpt_source_open(&src, dir, NULL, err);
    ckpt_source_free(src);
    return rc;
}

/* One shard holding tensor `name` (one byte) and metadata k0 .. k{n-1} = v0 ..., then `extra` = "1". */
static void write_meta_shard(const char *path, const char *name, size_t n, const char *extra, const char *k7)
{
    ckpt_kv *meta = calloc(n + 1, sizeof *meta);
    char (*text)[2][24] = calloc(n, sizeof *text);
    for (size_t i = 0; i < n; i++) {
        snprintf(text[i][0], sizeof text[i][0], "k%zu", i);
        snprintf(text[i][1], sizeof text[i][1], "v%zu", i);
        meta[i] = (ckpt_kv){text[i][0], i == 7 && k7 ? k7 : text[i][1]};
    }
    meta[n] = (ckpt_kv){extra, "1"};
    ckpt_tensor t = {name, CKPT_DTYPE_U8, 1, (uint64_t[]){1}, 1, 0, NULL};
    ckpt_writer *w = NULL;
    ckpt_error err = {0};
    ck_assert_int_eq(ckpt_writer_open(&w, path, &t, 1, meta, n + 1, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, "\x2a", 1, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, &err), CKPT_OK);
    ckpt_writer_free(w);
    free(text);
    free(meta);
}

/*
 * Shards' metadata merge: 100,000 keys in both (convert writes one per NZ tensor) found by name,
 * each shard's own key kept, an absent key NULL; a key whose value differs between shards refused.
 */
START_TEST(metadata_merged_across_shards)
{
    const size_t n = 100000;
    char *dir = test_tmpdir(), *a = test_join(dir, "a.safetensors"), *b = test_join(dir, "b.safetensors");
    write_meta_shard(a, "x", n, "only_a", NULL);
    write_meta_shard(b, "y", n, "only_b", NULL);
    ckpt_source *src = test_open(dir);
    ck_assert_uint_eq(ckpt_source_metadata_count(src), n + 2);
    for (size_t i = 0; i < n; i++) {
        char key[24], value[24];
        snprintf(key, sizeof key, "k%zu", i);
        snprintf(value, sizeof value, "v%zu", i);
        const char *got = ckpt_source_metadata_value(src, key);
        ck_assert_msg(got && strcmp(got, value) == 0, "%s = %s", key, got ? got : "(none)");
    }
    ck_assert_str_eq(ckpt_source_metadata_value(src, "only_a"), "1");
    ck_assert_str_eq(ckpt_source_metadata_value(src, "only_b"), "1");
    ck_assert_ptr_null(ckpt_source_metadata_value(src, "k100000"));
    ckpt_source_free(src);
    ck_assert_int_eq(unlink(b), 0);   /* the writer never replaces a file */
    write_meta_shard(b, "y", n, "only_b", "changed");
    ckpt_error err;
    ck_assert_int_eq(open_dir(dir, &err), CKPT_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "b.safetensors: metadata k7 disagrees"), "%s", err.message);
    test_rmtree(dir);
    free(a);
    free(b);
    free(dir);
}
END_TEST

START_TEST(shards_with_index)
{
    char *dir = make_shards();
    write_index(dir, "{\"metadata\":{\"total_size\":5},\"weight_map\":{\"y\":\"model-00002-of-00002.safetensors\","
                     "\"x\":\"model-00001-of-00002.safetensors\",\"w\":\"model-00001-of-00002.safetensors\"}}");
    ckpt_source *src = test_open(dir);
    ck_assert_uint_eq(ckpt_source_file_count(src), 2);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 3);
    ck_assert_str_eq(ckpt_source_tensor(src, 0)->name, "x");
    ck_assert_str_eq(ckpt_source_tensor(src, 2)->name, "y");
    ck_assert_uint_eq(ckpt_source_tensor(src, 2)->file, 1);
    const ckpt_tensor *t;
    uint8_t *y = test_read_tensor(src, "y", &t);
    ck_assert_mem_eq(y, "\x03\x04\x05", 3);
    free(y);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(shards_without_index)
{
    char *dir = make_shards();
    ckpt_source *src = test_open(dir);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 3);
    ck_assert_str_eq(ckpt_source_tensor(src, 2)->name, "y");
    ckpt_source_free(src);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(shards_index_defects)
{
    static const struct {
        const char *index;
        int code;
        const char *needle;
    } cases[] = {
        {"{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"missing.safetensors\"}}",
         CKPT_ERR_NOT_FOUND, "missing.safetensors, which does not exist"},
        {"{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\","
         "\"z\":\"model-00002-of-00002.safetensors\"}}",
         CKPT_ERR_FORMAT, "tensor z is not in shard"},
        {"{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\"}}", CKPT_ERR_FORMAT,
         "holds tensor w, which the index omits"},
        {"{\"weight_map\":{\"x\":\"model-00002-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\","
         "\"q\":\"model-00001-of-00002.safetensors\"}}",
         CKPT_ERR_FORMAT, "but stored in"},
        {"{\"weight_map\":{\"x\":\"../model-00001-of-00002.safetensors\"}}", CKPT_ERR_FORMAT,
         "leaves the checkpoint folder"},
        {"{\"weight_map\":{\"x\":\"/etc/passwd\"}}", CKPT_ERR_FORMAT, "leaves the checkpoint folder"},
        {"{\"weight_map\":{\"x\":\"a\",\"x\":\"b\"}}", CKPT_ERR_FORMAT, "duplicate"},
        {"{\"metadata\":{}}", CKPT_ERR_FORMAT, "no weight_map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = make_shards();
        write_index(dir, cases[i].index);
        ckpt_error err;
        int rc = open_dir(dir, &err);
        ck_assert_msg(rc == cases[i].code, "case %zu: status %d (%s)", i, rc, rc ? err.message : "ok");
        ck_assert_msg(strstr(err.message, cases[i].needle), "case %zu: %s", i, err.message);
        ck_assert_msg(strstr(err.message, dir), "case %zu does not name the folder: %s", i, err.message);
        test_rmtree(dir);
        free(dir);
    }
}
END_TEST

START_TEST(shards_same_tensor_twice)
{
    char *dir = make_shards();
    char *c = test_join(dir, "model-00003.safetensors");
    write_st(c, shard_b, strlen(shard_b), "\x03\x04\x05", 3);
    ckpt_error err;
    ck_assert_int_eq(open_dir(dir, &err), CKPT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "tensor y is already defined in"));
    test_rmtree(dir);
    free(c);
    free(dir);
}
END_TEST

/* ---- the writer ---- */

/* Reads every tensor of `src` and writes them, with its metadata, to `path`. */
static void rewrite(const ckpt_source *src, const char *path)
{
    size_t n = ckpt_source_tensor_count(src), m = ckpt_source_metadata_count(src);
    ckpt_tensor *plan = calloc(n + 1, sizeof *plan);
    ckpt_kv *meta = calloc(m + 1, sizeof *meta);
    for (size_t i = 0; i < n; i++)
        plan[i] = *ckpt_source_tensor(src, i);
    for (size_t i = 0; i < m; i++)
        ckpt_source_metadata(src, i, &meta[i].key, &meta[i].value);
    ckpt_writer *w;
    ckpt_error err;
    ck_assert_msg(ckpt_writer_open(&w, path, plan, n, meta, m, &err) == CKPT_OK, "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        const ckpt_tensor *t;
        uint8_t *data = test_read_tensor(src, plan[i].name, &t);
        /* odd chunking, to exercise the buffer */
        size_t half = t->nbytes / 3;
        ck_assert_int_eq(ckpt_writer_write(w, data, half, &err), CKPT_OK);
        ck_assert_int_eq(ckpt_writer_write(w, data + half, t->nbytes - half, &err), CKPT_OK);
        free(data);
    }
    ck_assert_msg(ckpt_writer_finish(w, &err) == CKPT_OK, "%s", err.message);
    ckpt_writer_free(w);
    free(plan);
    free(meta);
}

static void assert_same_catalog(const ckpt_source *a, const ckpt_source *b)
{
    ck_assert_uint_eq(ckpt_source_tensor_count(a), ckpt_source_tensor_count(b));
    for (size_t i = 0; i < ckpt_source_tensor_count(a); i++) {
        const ckpt_tensor *ta = ckpt_source_tensor(a, i), *tb;
        uint8_t *da = test_read_tensor(a, ta->name, NULL);
        uint8_t *db = test_read_tensor(b, ta->name, &tb);
        ck_assert_int_eq(ta->dtype, tb->dtype);
        ck_assert_uint_eq(ta->rank, tb->rank);
        ck_assert_mem_eq(ta->shape, tb->shape, ta->rank * sizeof *ta->shape);
        ck_assert_uint_eq(ta->nbytes, tb->nbytes);
        if (ta->nbytes)
            ck_assert_mem_eq(da, db, ta->nbytes);
        free(da);
        free(db);
    }
    ck_assert_uint_eq(ckpt_source_metadata_count(a), ckpt_source_metadata_count(b));
}

START_TEST(round_trip_external)
{
    static const char *const files[] = {"candle/voices.safetensors", "candle/jfk-codes.safetensors",
                                        "safetensors-cpp/model.safetensors", "mlverse/hello.safetensors"};
    char *dir = test_tmpdir();
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char *in = test_external(files[f]);
        char *out1 = test_join(dir, "once.safetensors"), *out2 = test_join(dir, "twice.safetensors");
        ckpt_source *a = test_open(in);
        rewrite(a, out1);
        ckpt_source *b = test_open(out1);
        assert_same_catalog(a, b);
        rewrite(b, out2);
        size_t n1, n2;
        uint8_t *f1 = test_read_file(out1, &n1), *f2 = test_read_file(out2, &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(f1, f2, n1);
        ck_assert_uint_eq((f1[0] | f1[1] << 8) % 8, 0);
        free(f1);
        free(f2);
        ckpt_source_free(a);
        ckpt_source_free(b);
        unlink(out1);
        unlink(out2);
        free(out1);
        free(out2);
        free(in);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(writer_refusals_leave_nothing)
{
    char *dir = test_tmpdir();
    char *path = test_join(dir, "w.safetensors");
    ckpt_tensor plan[2] = {{"a", CKPT_DTYPE_F32, 1, (uint64_t[]){2}, 0, 0, NULL},
                           {"a", CKPT_DTYPE_F32, 1, (uint64_t[]){2}, 0, 0, NULL}};
    ckpt_writer *w;
    ckpt_error err;
    ck_assert_int_eq(ckpt_writer_open(&w, path, plan, 2, NULL, 0, &err), CKPT_ERR_ARG);
    /* too few bytes: finish refuses and free removes the temporary file */
    ck_assert_int_eq(ckpt_writer_open(&w, path, plan, 1, NULL, 0, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, "1234", 4, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, "123456789", 9, &err), CKPT_ERR_ARG);
    ck_assert_uint_eq(test_count_entries(dir), 1); /* the hidden temporary */
    ck_assert_int_eq(ckpt_writer_finish(w, &err), CKPT_ERR_ARG);
    ckpt_writer_free(w);
    ck_assert_uint_eq(test_count_entries(dir), 0);
    /* an existing file is never replaced */
    test_write_file(path, "keep", 4);
    ck_assert_int_eq(ckpt_writer_open(&w, path, plan, 1, NULL, 0, &err), CKPT_ERR_EXISTS);
    size_t n;
    uint8_t *kept = test_read_file(path, &n);
    ck_assert_mem_eq(kept, "keep", 4);
    free(kept);
    test_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- concurrency: one source, several readers ---- */

struct reader_job {
    const ckpt_source *src;
    int ok;
};

static void *read_all(void *arg)
{
    struct reader_job *job = arg;
    job->ok = 1;
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < ckpt_source_tensor_count(job->src); i++) {
            const ckpt_tensor *t = ckpt_source_tensor(job->src, i);
            uint8_t *buf = malloc(t->nbytes + 1);
            ckpt_error err;
            uint64_t sum = 0;
            int rc = ckpt_source_read(job->src, i, 0, ckpt_tensor_rows(t), buf, t->nbytes, &err);
            for (uint64_t k = 0; k < t->nbytes; k++)
                sum += buf[k];
            /* byte sums of tokens and mask, computed with Python over the raw file */
            if (rc != CKPT_OK || sum != (i == 0 ? 3184858u : 24294u))
                job->ok = 0;
            free(buf);
        }
    }
    return NULL;
}

START_TEST(concurrent_reads)
{
    char *path = test_external("candle/voices.safetensors");
    ckpt_source *src = test_open(path);
    pthread_t th[4];
    struct reader_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct reader_job){src, 0};
        pthread_create(&th[i], NULL, read_all, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(jobs[i].ok);
    }
    ckpt_source_free(src);
    free(path);
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *ext = tcase_create("external");
    tcase_add_test(ext, external_voices);
    tcase_add_test(ext, external_jfk_codes);
    tcase_add_test(ext, external_safetensors_cpp_model);
    tcase_add_test(ext, external_mlverse_hello);
    tcase_add_test(ext, external_abuse_refused);
    tcase_add_test(ext, sample_golden_values);
    suite_add_tcase(s, ext);

    TCase *rules = tcase_create("reference rules");
    tcase_add_test(rules, rule_valid_minimal);
    tcase_add_test(rules, rule_overlap);
    tcase_add_test(rules, rule_gap);
    tcase_add_test(rules, rule_not_from_zero);
    tcase_add_test(rules, rule_reversed_offsets);
    tcase_add_test(rules, rule_header_longer_than_file);
    tcase_add_test(rules, rule_header_over_limit);
    tcase_add_test(rules, rule_short_file);
    tcase_add_test(rules, rule_bad_utf8);
    tcase_add_test(rules, rule_invalid_json);
    tcase_add_test(rules, rule_not_starting_with_brace);
    tcase_add_test(rules, rule_duplicate_key);
    tcase_add_test(rules, rule_shape_overflow);
    tcase_add_test(rules, rule_size_mismatch);
    tcase_add_test(rules, rule_unknown_dtype);
    tcase_add_test(rules, rule_trailing_bytes);
    tcase_add_test(rules, rule_missing_bytes);
    tcase_add_test(rules, rule_bad_fields);
    tcase_add_test(rules, rule_nesting_bomb);
    tcase_add_test(rules, rule_rank_limit);
    tcase_add_test(rules, metadata_and_empty_tensors);
    tcase_add_test(rules, read_row_ranges);
    suite_add_tcase(s, rules);

    TCase *shards = tcase_create("shards");
    tcase_add_test(shards, shards_with_index);
    tcase_add_test(shards, metadata_merged_across_shards);
    tcase_add_test(shards, shards_without_index);
    tcase_add_test(shards, shards_index_defects);
    tcase_add_test(shards, shards_same_tensor_twice);
    suite_add_tcase(s, shards);

    TCase *writer = tcase_create("writer");
    tcase_add_test(writer, round_trip_external);
    tcase_add_test(writer, writer_refusals_leave_nothing);
    tcase_add_test(writer, concurrent_reads);
    suite_add_tcase(s, writer);
    return s;
}

int main(void)
{
    return test_main(safetensors_suite());
}
