/*
 * test_rules.c: the row actions of the rules language (rows=, groups=,
 * split=, ${KEY}) against row maps worked out by hand, and their refusals.
 *
 * A selection is checked by listing, for each output row, the source row
 * it comes from (the formula of ckpt_row_select in ckpt.h), against lists
 * written out here; converting selected rows must store exactly what
 * converting the same rows, cut beforehand by the test, stores.
 */
#include "helpers.h"

#include "libckpt/plan/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The source rows of a selection, one per output row, for a tensor of `rows` rows. */
static size_t source_rows(const ckpt_row_select *s, uint64_t rows, uint64_t *out, size_t cap)
{
    if (!s->groups) {
        for (uint64_t r = 0; r < rows && r < cap; r++)
            out[r] = r;
        return rows;
    }
    size_t n = 0;
    for (uint64_t r = 0; r < s->groups * s->count && n < cap; r++)
        out[n++] = (r / s->count) * s->group_rows + s->offset + r % s->count;
    return n;
}

/* Decides `name` of shape [rows, 4] under `text` and checks part `part`'s name and source rows. */
static void check_part(const char *text, const char *name, uint64_t rows, size_t parts, size_t part,
                       const char *expect_name, const uint64_t *expect, size_t expect_count)
{
    char *path = test_testdata("rename/megatron.safetensors");
    ckpt_source *src = test_open(path);
    struct ruleset rs = {0};
    ckpt_error err = {0};
    ck_assert_int_eq(ruleset_parse(&rs, text, "test", &err), CKPT_OK);
    struct rule_decision d;
    ck_assert_msg(ruleset_decide(&rs, src, name, CKPT_DTYPE_BF16, &d, &err) == CKPT_OK, "%s", err.message);
    ck_assert_uint_eq(d.parts, parts);
    ck_assert_str_eq(d.names[part], expect_name);
    ckpt_row_select sel;
    uint64_t shape[2] = {rows, 4}, got[256];
    ck_assert_msg(rule_rows(&d, part, name, 2, shape, &sel, &err) == CKPT_OK, "%s", err.message);
    size_t n = source_rows(&sel, rows, got, 256);
    ck_assert_uint_eq(n, expect_count);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == expect[i], "%s part %zu: output row %zu from source row %llu, expected %llu", name,
                      part, i, (unsigned long long)got[i], (unsigned long long)expect[i]);
    rule_decision_free(&d);
    ruleset_free(&rs);
    ckpt_source_free(src);
    free(path);
}

START_TEST(grouped_split_row_maps)
{
    /* 16 rows, 2 groups of 8, each [2 units q; 1 k; 1 v] of 2 rows */
    const char *rules = "*.qkv groups=2 split=2:1:1 rename=$1.q,$1.k,$1.v\n";
    check_part(rules, "l0.qkv", 16, 3, 0, "l0.q", (uint64_t[]){0, 1, 2, 3, 8, 9, 10, 11}, 8);
    check_part(rules, "l0.qkv", 16, 3, 1, "l0.k", (uint64_t[]){4, 5, 12, 13}, 4);
    check_part(rules, "l0.qkv", 16, 3, 2, "l0.v", (uint64_t[]){6, 7, 14, 15}, 4);
    /* the same from the source metadata: 2 groups, 2 heads per group */
    const char *meta = "*.qkv groups=${megatron.num_query_groups} split=${megatron.heads_per_group}:1:1 "
                       "rename=q,k,v\n";
    check_part(meta, "l0.qkv", 16, 3, 1, "k", (uint64_t[]){4, 5, 12, 13}, 4);
}
END_TEST

START_TEST(split_and_rows_row_maps)
{
    check_part("fc1 split=1:1 rename=gate,up\n", "fc1", 6, 2, 1, "up", (uint64_t[]){3, 4, 5}, 3);
    check_part("emb rows=3\n", "emb", 5, 1, 0, "emb", (uint64_t[]){0, 1, 2}, 3);
    check_part("emb rows=${megatron.vocab_size}\n", "emb", 64, 1, 0, "emb",
               (uint64_t[]){0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                            20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
                            40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59},
               60);
    /* rows= first, then groups of what is kept: 12 of 14 rows, 2 groups of 6, units of 2 */
    const char *both = "x rows=12 groups=2 split=1:2 rename=a,b\n";
    check_part(both, "x", 14, 2, 0, "a", (uint64_t[]){0, 1, 6, 7}, 4);
    check_part(both, "x", 14, 2, 1, "b", (uint64_t[]){2, 3, 4, 5, 8, 9, 10, 11}, 8);
    /* a later rule's split takes an earlier rule's names; a comma without split is part of the name */
    check_part("w rename=p,q\nw split=3:1\n", "w", 8, 2, 1, "q", (uint64_t[]){6, 7}, 2);
    check_part("w rename=p,q\n", "w", 2, 1, 0, "p,q", (uint64_t[]){0, 1}, 2);
}
END_TEST

START_TEST(every_row_is_no_selection)
{
    ckpt_error err = {0};
    struct ruleset rs = {0};
    struct rule_decision d;
    ckpt_row_select sel = {9, 9, 9, 9};
    ck_assert_int_eq(ruleset_parse(&rs, "e rows=64\n", "test", &err), CKPT_OK);
    ck_assert_int_eq(ruleset_decide(&rs, NULL, "e", CKPT_DTYPE_BF16, &d, &err), CKPT_OK);
    ck_assert_int_eq(rule_rows(&d, 0, "e", 2, (uint64_t[]){64, 32}, &sel, &err), CKPT_OK);
    ck_assert_uint_eq(sel.groups, 0);
    rule_decision_free(&d);
    ruleset_free(&rs);
}
END_TEST

/* ---- end to end: selected rows convert like a tensor cut beforehand ---- */

#define B 6   /* a [6, 3, 4] tensor: rank 3, so a row of dim 0 is 3 lines */

/* SRC/t.safetensors: t = 0, 1, 2, ... and ref_a, ref_b = its rows {0, 3} and {1, 2, 4, 5}, gathered here. */
static char *write_rank3_source(const char *dir)
{
    static const uint64_t shape[3] = {B, 3, 4}, part[3] = {2, 3, 4}, rest[3] = {4, 3, 4};
    float t[B * 12], a[2 * 12], b[4 * 12];
    for (int i = 0; i < B * 12; i++)
        t[i] = (float)i;
    static const int rows_a[2] = {0, 3}, rows_b[4] = {1, 2, 4, 5};
    for (int r = 0; r < 2; r++)
        memcpy(a + r * 12, t + rows_a[r] * 12, 12 * sizeof *t);
    for (int r = 0; r < 4; r++)
        memcpy(b + r * 12, t + rows_b[r] * 12, 12 * sizeof *t);
    ckpt_tensor tensors[3] = {{"t", CKPT_DTYPE_F32, 3, shape, sizeof t, 0, NULL},
                              {"ref_a", CKPT_DTYPE_F32, 3, part, sizeof a, 0, NULL},
                              {"ref_b", CKPT_DTYPE_F32, 3, rest, sizeof b, 0, NULL}};
    char *path = test_join(dir, "t.safetensors");
    ckpt_writer *w = NULL;
    ckpt_error err = {0};
    ck_assert_int_eq(ckpt_writer_open(&w, path, tensors, 3, NULL, 0, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, t, sizeof t, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, a, sizeof a, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, b, sizeof b, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, &err), CKPT_OK);
    ckpt_writer_free(w);
    return path;
}

/* Converts with `extra` rules after the split and checks a == ref_a and b == ref_b as stored. */
static void check_selected_like_cut(const char *dir, const char *src_path, const char *extra, ckpt_float_type dtype)
{
    char rules[256], *dst = test_join(dir, "out");
    snprintf(rules, sizeof rules, "t groups=2 split=1:2 rename=a,b\n%s", extra);
    ckpt_convert_options opts;
    ckpt_convert_options_default(&opts);
    opts.target = CKPT_TARGET_ND;
    opts.rules = rules;
    opts.dtype = dtype;
    opts.max_memory = 64;   /* blocks of a line or two: runs cross group boundaries */
    opts.nz_fp32_c0 = 16;   /* the sample tensors are f32 */
    ckpt_source *src = test_open(src_path);
    ckpt_plan *plan = NULL;
    ckpt_error err = {0};
    ck_assert_msg(ckpt_plan_build(&plan, src, dst, &opts, &err) == CKPT_OK, "%s", err.message);
    const ckpt_plan_entry *a = ckpt_plan_entry_at(plan, 0);
    ck_assert_str_eq(a->name, "a");
    ck_assert_uint_eq(a->rows.groups, 2);
    ck_assert_uint_eq(a->rows.group_rows, 3);
    ck_assert_uint_eq(a->rows.offset, 0);
    ck_assert_uint_eq(a->rows.count, 1);
    ck_assert_uint_eq(ckpt_plan_bytes_in(plan), 2 * B * 12 * 4);   /* t once, in parts, and the references */
    ck_assert_msg(ckpt_plan_execute(plan, NULL, NULL, NULL, &err) == CKPT_OK, "%s", err.message);
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    ckpt_source *out = test_open(dst);
    static const char *const pairs[2][2] = {{"a", "ref_a"}, {"b", "ref_b"}};
    for (int k = 0; k < 2; k++) {
        const ckpt_tensor *x, *y;
        uint8_t *dx = test_read_tensor(out, pairs[k][0], &x), *dy = test_read_tensor(out, pairs[k][1], &y);
        ck_assert_uint_eq(x->nbytes, y->nbytes);
        ck_assert_msg(memcmp(dx, dy, x->nbytes) == 0, "%s differs from %s (rules: %s)", pairs[k][0], pairs[k][1],
                      extra);
        free(dx);
        free(dy);
    }
    ckpt_source_free(out);
    test_rmtree(dst);
    free(dst);
}

START_TEST(selected_rows_convert_like_cut_rows)
{
    char *dir = test_tmpdir(), *src = write_rank3_source(dir);
    check_selected_like_cut(dir, src, "", CKPT_FLOAT_TARGET);
    check_selected_like_cut(dir, src, "", CKPT_FLOAT_F16);
    check_selected_like_cut(dir, src, "* layout=nz\n", CKPT_FLOAT_F16);
    check_selected_like_cut(dir, src, "* layout=nz-t\n", CKPT_FLOAT_TARGET);
    test_rmtree(dir);
    free(src);
    free(dir);
}
END_TEST

/* A fused grouped-query bias: v = 0 .. 15 as 2 groups of [4 q; 2 k; 2 v] comes apart like a weight's rows. */
START_TEST(vector_rows_split_like_a_weights)
{
    char *dir = test_tmpdir(), *path = test_join(dir, "v.safetensors"), *dst = test_join(dir, "out");
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = (float)i;
    ckpt_tensor t = {"v", CKPT_DTYPE_F32, 1, (uint64_t[]){16}, sizeof v, 0, NULL};
    ckpt_writer *w = NULL;
    ckpt_error err = {0};
    ck_assert_int_eq(ckpt_writer_open(&w, path, &t, 1, NULL, 0, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, v, sizeof v, &err), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, &err), CKPT_OK);
    ckpt_writer_free(w);
    char *rules = test_join(dir, "rules"), *out;
    const char *text = "v groups=2 split=2:1:1 rename=q,k,v\n";
    test_write_file(rules, text, strlen(text));
    ck_assert_int_eq(test_ckpt(&out, NULL, "convert '%s' '%s' --target nd --rules '%s' --quiet", path, dst, rules), 0);
    free(out);
    ckpt_source *src = test_open(dst);
    static const struct {
        const char *name;
        float rows[8];
        uint64_t n;
    } want[] = {{"q", {0, 1, 2, 3, 8, 9, 10, 11}, 8}, {"k", {4, 5, 12, 13}, 4}, {"v", {6, 7, 14, 15}, 4}};
    for (size_t k = 0; k < 3; k++) {
        const ckpt_tensor *x;
        float *got = (float *)test_read_tensor(src, want[k].name, &x);
        ck_assert_uint_eq(x->rank, 1);
        ck_assert_uint_eq(x->shape[0], want[k].n);
        ck_assert_msg(memcmp(got, want[k].rows, want[k].n * sizeof *got) == 0, "%s differs", want[k].name);
        free(got);
    }
    ckpt_source_free(src);
    ck_assert_int_eq(test_ckpt(&out, NULL, "verify '%s' --against '%s'", dst, path), 0);
    free(out);
    test_rmtree(dir);
    free(rules);
    free(dst);
    free(path);
    free(dir);
}
END_TEST

/* Parses `text`, decides `name` (shape [rows, 4], or rank 1) and expects a refusal mentioning each of `words`. */
static void check_refused(const char *text, const char *name, uint64_t rows, uint32_t rank, const char *w1,
                          const char *w2)
{
    char *path = test_testdata("rename/megatron.safetensors");
    ckpt_source *src = test_open(path);
    struct ruleset rs = {0};
    ckpt_error err = {0};
    int rc = ruleset_parse(&rs, text, "test", &err);
    struct rule_decision d;
    if (rc == CKPT_OK && (rc = ruleset_decide(&rs, src, name, CKPT_DTYPE_BF16, &d, &err)) == CKPT_OK) {
        ckpt_row_select sel;
        for (size_t part = 0; part < d.parts && rc == CKPT_OK; part++)
            rc = rule_rows(&d, part, name, rank, (uint64_t[]){rows, 4}, &sel, &err);
        rule_decision_free(&d);
    }
    ck_assert_msg(rc == CKPT_ERR_FORMAT, "'%s' on %s: expected a format error, got %d", text, name, rc);
    ck_assert_msg(strstr(err.message, w1) && strstr(err.message, w2), "message '%s' lacks '%s' or '%s'", err.message,
                  w1, w2);
    ruleset_free(&rs);
    ckpt_source_free(src);
    free(path);
}

START_TEST(bad_row_rules_refused)
{
    check_refused("e rows=${megatron.nope}\n", "e", 64, 2, "test:1", "megatron.nope");
    check_refused("\nq groups=2 split=2:1:1 rename=a,b,c\n", "q", 30, 2, "test:2", "do not divide");
    check_refused("e rows=65\n", "e", 64, 2, "test:1", "64 rows");
    check_refused("e rows=4\n", "e", 64, 0, "test:1", "scalar");
    check_refused("f split=1:1 rename=a,b,c\n", "f", 8, 2, "test:1", "number of names");
    check_refused("f split=1:1 rename=a\n", "f", 8, 2, "test:1", "number of names");
    check_refused("f split=1:1\n", "f", 8, 2, "test:1", "no rename");
    check_refused("e rows=${megatron.swiglu}\n", "e", 8, 2, "test:1", "'true'");
    check_refused("e rows=0\n", "e", 8, 2, "test:1", "positive");
    check_refused("f groups=2 rename=a\n", "f", 8, 2, "test:1", "needs split");
    check_refused("f split=2 rename=a\n", "f", 8, 2, "test:1", "split=2");
    check_refused("f split=1:x rename=a,b\n", "f", 8, 2, "test:1", "split=1:x");
    check_refused("f rows=${oops rename=a\n", "f", 8, 2, "test:1", "rows=${oops");
}
END_TEST

/* Names from metadata: ${KEY}, and ${KEY+$N} adding the number the N-th '*' matched (an MTP layer after the rest). */
START_TEST(names_from_metadata_and_copies)
{
    check_part("mtp.layers.*.enorm.weight rename=model.layers.${megatron.num_layers+$1}.enorm.weight\n",
               "mtp.layers.1.enorm.weight", 4, 1, 0, "model.layers.3.enorm.weight", (uint64_t[]){0, 1, 2, 3}, 4);
    check_part("*.w rename=$1.${megatron.hidden_size}.w\n", "x.w", 4, 1, 0, "x.32.w", (uint64_t[]){0, 1, 2, 3}, 4);
    /* copy= repeats the rows the tensor keeps under more names; the last rule giving copies wins */
    char *path = test_testdata("rename/megatron.safetensors");
    ckpt_source *src = test_open(path);
    struct ruleset rs = {0};
    ckpt_error err = {0};
    ck_assert_int_eq(ruleset_parse(&rs, "e rows=2 rename=a copy=z\ne copy=b,layer${megatron.num_layers}.c\n", "test",
                                   &err), CKPT_OK);
    struct rule_decision d;
    ck_assert_msg(ruleset_decide(&rs, src, "e", CKPT_DTYPE_BF16, &d, &err) == CKPT_OK, "%s", err.message);
    ck_assert_uint_eq(d.parts, 1);
    ck_assert_str_eq(d.names[0], "a");
    ck_assert_uint_eq(d.copies, 2);
    ck_assert_str_eq(d.copy_names[0], "b");
    ck_assert_str_eq(d.copy_names[1], "layer2.c");
    ck_assert_uint_eq(d.rows, 2);
    rule_decision_free(&d);
    ruleset_free(&rs);
    ckpt_source_free(src);
    free(path);
}
END_TEST

START_TEST(bad_names_refused)
{
    check_refused("e rename=a.${megatron.nope}\n", "e", 8, 2, "test:1", "megatron.nope");
    check_refused("x.* rename=${megatron.num_layers+$2}\n", "x.1", 8, 2, "test:1", "$1..$1");
    check_refused("x.* rename=${megatron.swiglu+$1}\n", "x.1", 8, 2, "test:1", "not both numbers");
    check_refused("x.* rename=${megatron.num_layers+$1}\n", "x.a", 8, 2, "test:1", "'2' and 'a'");
    check_refused("e rename=${megatron.num_layers\n", "e", 8, 2, "test:1", "without its '}'");
    check_refused("f split=1:1 rename=a,b copy=c\n", "f", 8, 2, "test:1", "not with split=");
    check_refused("f split=1:1 rename=a,b\nf copy=c\n", "f", 8, 2, "test:2", "repeats the whole of f");
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rows");
    tcase_add_test(tc, grouped_split_row_maps);
    tcase_add_test(tc, split_and_rows_row_maps);
    tcase_add_test(tc, every_row_is_no_selection);
    tcase_add_test(tc, bad_row_rules_refused);
    tcase_add_test(tc, names_from_metadata_and_copies);
    tcase_add_test(tc, bad_names_refused);
    tcase_add_test(tc, selected_rows_convert_like_cut_rows);
    tcase_add_test(tc, vector_rows_split_like_a_weights);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(rules_suite());
}
