/*
 * test_options.c: the rule every public option struct follows (ckpt.h,
 * "Conventions"): `size` first, set by its _default(); a smaller struct
 * from an older header is read as far as it goes, a larger one refused;
 * choices are enums with their names.
 */
#include "helpers.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

START_TEST(defaults_set_size)
{
    ckpt_limits l;
    ckpt_open_options o;
    ckpt_convert_options c;
    ckpt_verify_options v;
    ckpt_diff_options d;
    ckpt_pack_options p;
    ckpt_unpack_options u;
    memset(&d, 0x5a, sizeof d);
    ckpt_limits_default(&l);
    ckpt_open_options_default(&o);
    ckpt_convert_options_default(&c);
    ckpt_verify_options_default(&v);
    ckpt_diff_options_default(&d);
    ckpt_pack_options_default(&p);
    ckpt_unpack_options_default(&u);
    ck_assert_uint_eq(l.size, sizeof l);
    ck_assert_uint_eq(o.size, sizeof o);
    ck_assert_uint_eq(o.limits.size, sizeof o.limits);
    ck_assert_uint_eq(c.size, sizeof c);
    ck_assert_uint_eq(v.size, sizeof v);
    ck_assert_uint_eq(d.size, sizeof d);
    ck_assert_uint_eq(p.size, sizeof p);
    ck_assert_uint_eq(u.size, sizeof u);
    /* the diff defaults: exact values, default open options */
    ck_assert_int_eq(d.names_only, 0);
    ck_assert(d.max_abs_error == 0 && d.max_rel_error == 0);
    ck_assert_ptr_null(d.open);
    ck_assert_int_eq(c.target, CKPT_TARGET_NONE);
    ck_assert_int_eq(c.dtype, CKPT_FLOAT_TARGET);
}
END_TEST

/* A struct from an older header ends before the fields it did not know: they keep their defaults. */
START_TEST(older_smaller_structs_are_read_as_far_as_they_go)
{
    char *sample = test_testdata("sample");
    ckpt_error err;
    ckpt_source *src = NULL;
    ckpt_open_options o;
    ckpt_open_options_default(&o);
    o.size = offsetof(ckpt_open_options, deepspeed_weights);
    o.deepspeed_weights = (ckpt_deepspeed_weights)7;   /* beyond `size`: never read */
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &o, &err), CKPT_OK);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), 21);
    ckpt_source_free(src);

    ckpt_limits l;
    ckpt_limits_default(&l);
    l.size = offsetof(ckpt_limits, max_tensors);
    l.max_tensors = 3;   /* beyond `size`: the default holds */
    ck_assert_int_eq(ckpt_source_open(&src, sample, &l, &err), CKPT_OK);
    ckpt_source_free(src);
    l.size = sizeof l;
    ck_assert_int_eq(ckpt_source_open(&src, sample, &l, &err), CKPT_ERR_LIMIT);

    src = test_open(sample);
    char *dir = test_tmpdir(), *dst = test_join(dir, "out");
    ckpt_convert_options c;
    ckpt_convert_options_default(&c);
    c.target = CKPT_TARGET_ND;
    c.size = offsetof(ckpt_convert_options, nz_fp32_c0);
    c.nz_fp32_c0 = 3;    /* would be refused if read */
    ckpt_plan *plan = NULL;
    ck_assert_msg(ckpt_plan_build(&plan, src, dst, &c, &err) == CKPT_OK, "%s", err.message);
    ckpt_plan_free(plan);
    ckpt_source_free(src);
    test_rmtree(dir);
    free(dst);
    free(dir);
    free(sample);
}
END_TEST

/* A size beyond this library's struct comes from a newer header: refused, never read past. */
START_TEST(unknown_larger_structs_are_refused)
{
    char *sample = test_testdata("sample"), *dir = test_tmpdir(), *dst = test_join(dir, "out");
    ckpt_error err;
    ckpt_source *src = NULL;
    ckpt_limits l;
    ckpt_limits_default(&l);
    l.size = sizeof l + 8;
    ck_assert_int_eq(ckpt_source_open(&src, sample, &l, &err), CKPT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "ckpt_limits"));
    ckpt_open_options o;
    ckpt_open_options_default(&o);
    o.size = sizeof o + 8;
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &o, &err), CKPT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "ckpt_open_options"));
    o.size = 0;   /* never filled by ckpt_open_options_default */
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &o, &err), CKPT_ERR_ARG);
    ckpt_open_options_default(&o);
    o.limits.size = sizeof o.limits + 8;
    ck_assert_int_eq(ckpt_source_open_ext(&src, sample, &o, &err), CKPT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "ckpt_limits"));

    src = test_open(sample);
    ckpt_convert_options c;
    ckpt_convert_options_default(&c);
    c.target = CKPT_TARGET_ND;
    c.size = sizeof c + 8;
    ckpt_plan *plan = NULL;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, dst, &c, &err), CKPT_ERR_ARG);
    ck_assert_ptr_null(plan);
    ckpt_source_free(src);

    ckpt_verify_options v;
    ckpt_verify_options_default(&v);
    v.size = sizeof v + 8;
    ck_assert_int_eq(ckpt_verify(sample, &v, NULL, NULL, NULL, &err), CKPT_ERR_ARG);
    ckpt_verify_options_default(&v);
    ckpt_open_options_default(&o);
    o.size = 1;
    v.open = &o;
    ck_assert_int_eq(ckpt_verify(sample, &v, NULL, NULL, NULL, &err), CKPT_ERR_ARG);
    ckpt_diff_options d;
    ckpt_diff_options_default(&d);
    d.size = sizeof d + 8;
    ck_assert_int_eq(ckpt_diff(sample, sample, &d, NULL, NULL, NULL, &err), CKPT_ERR_ARG);
    ckpt_diff_options_default(&d);
    ck_assert_int_eq(ckpt_diff(sample, sample, &d, NULL, NULL, NULL, &err), CKPT_OK);
    ckpt_pack_options p;
    ckpt_pack_options_default(&p);
    p.size = sizeof p + 8;
    ck_assert_int_eq(ckpt_pack(sample, dst, &p, NULL, &err), CKPT_ERR_ARG);
    ckpt_unpack_options u;
    ckpt_unpack_options_default(&u);
    u.size = sizeof u + 8;
    ck_assert_int_eq(ckpt_unpack(sample, dst, &u, NULL, NULL, NULL, &err), CKPT_ERR_ARG);
    ck_assert_uint_eq(test_count_entries(dir), 0);
    test_rmtree(dir);
    free(dst);
    free(dir);
    free(sample);
}
END_TEST

START_TEST(targets_and_float_types_by_name)
{
    static const struct {
        ckpt_target target;
        const char *name;
    } targets[] = {{CKPT_TARGET_ND, "nd"}, {CKPT_TARGET_ASCEND_310P, "ascend-310p"}, {CKPT_TARGET_ASCEND_910B, "ascend-910b"}};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        ck_assert_str_eq(ckpt_target_name(targets[i].target), targets[i].name);
        ck_assert_int_eq(ckpt_target_from_name(targets[i].name), targets[i].target);
    }
    ck_assert_ptr_null(ckpt_target_name(CKPT_TARGET_NONE));
    ck_assert_ptr_null(ckpt_target_name((ckpt_target)99));
    ck_assert_int_eq(ckpt_target_from_name("910b"), CKPT_TARGET_NONE);
    ck_assert_int_eq(ckpt_target_from_name(NULL), CKPT_TARGET_NONE);

    static const struct {
        ckpt_float_type type;
        const char *name;
    } types[] = {{CKPT_FLOAT_TARGET, "target"}, {CKPT_FLOAT_KEEP, "keep"}, {CKPT_FLOAT_F16, "f16"},
                 {CKPT_FLOAT_BF16, "bf16"}, {CKPT_FLOAT_F32, "f32"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ckpt_float_type t = (ckpt_float_type)-1;
        ck_assert_str_eq(ckpt_float_type_name(types[i].type), types[i].name);
        ck_assert_int_eq(ckpt_float_type_parse(types[i].name, &t), CKPT_OK);
        ck_assert_int_eq(t, types[i].type);
    }
    ckpt_float_type t;
    ck_assert_int_eq(ckpt_float_type_parse("BF16", &t), CKPT_OK);
    ck_assert_int_eq(t, CKPT_FLOAT_BF16);
    ck_assert_int_eq(ckpt_float_type_parse("fp16", &t), CKPT_ERR_ARG);
    ck_assert_ptr_null(ckpt_float_type_name((ckpt_float_type)99));
}
END_TEST

/* No target is the caller's mistake, told in the library's words (no command-line flag). */
START_TEST(plan_without_target)
{
    char *sample = test_testdata("sample");
    ckpt_source *src = test_open(sample);
    ckpt_convert_options c;
    ckpt_convert_options_default(&c);
    ckpt_plan *plan = NULL;
    ckpt_error err;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, "/nonexistent/out", &c, &err), CKPT_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "ckpt_convert_options.target"));
    ck_assert_ptr_null(strstr(err.message, "--"));
    c.target = CKPT_TARGET_ASCEND_310P;
    c.dtype = CKPT_FLOAT_BF16;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, "/nonexistent/out", &c, &err), CKPT_ERR_ARG);
    ck_assert_ptr_null(strstr(err.message, "--"));
    c.dtype = (ckpt_float_type)42;
    ck_assert_int_eq(ckpt_plan_build(&plan, src, "/nonexistent/out", &c, &err), CKPT_ERR_ARG);
    ckpt_source_free(src);
    free(sample);
}
END_TEST

/* Counts events; stops (non-zero) once `stop_after` have come, when set. */
struct event_log {
    size_t files, tensors, stop_after;
    uint64_t last_done, last_total;
    int bad;   /* an event that breaks its contract */
};

static int log_event(void *payload, const ckpt_event *ev)
{
    struct event_log *l = payload;
    if (ev->kind == CKPT_EVENT_FILE) {
        l->files++;
        l->bad |= !ev->file || ev->tensor || ev->done != l->files;
    } else {
        l->tensors++;
        l->bad |= !ev->tensor || ev->file || ev->done < l->last_done;
        l->last_done = ev->done;
    }
    l->bad |= !ev->path;
    l->last_total = ev->total;
    return l->stop_after && l->files + l->tensors >= l->stop_after;
}

/* Opening tells each file and tensor as it comes, and stops when asked. */
START_TEST(open_events_and_cancel)
{
    static const char *const fixtures[] = {"sample", "torch/training.pt", "megatron/tp2pp2"};
    for (size_t k = 0; k < sizeof fixtures / sizeof fixtures[0]; k++) {
        char *path = test_testdata(fixtures[k]);
        ckpt_open_options o;
        ckpt_open_options_default(&o);
        struct event_log l = {0};
        o.events = log_event;
        o.events_payload = &l;
        ckpt_source *src = NULL;
        ckpt_error err;
        ck_assert_msg(ckpt_source_open_ext(&src, path, &o, &err) == CKPT_OK, "%s", err.message);
        ck_assert_msg(l.tensors >= ckpt_source_tensor_count(src), "%s: %zu tensor events for %zu tensors", fixtures[k],
                      l.tensors, ckpt_source_tensor_count(src));
        ck_assert_uint_ge(l.files, 1);
        ck_assert_int_eq(l.bad, 0);
        ckpt_source_free(src);
        struct event_log stop = {.stop_after = 3};
        o.events_payload = &stop;
        ck_assert_int_eq(ckpt_source_open_ext(&src, path, &o, &err), CKPT_ERR_CANCELLED);
        ck_assert_ptr_null(src);
        ck_assert_ptr_nonnull(strstr(err.message, "cancelled"));
        free(path);
    }
}
END_TEST

/* diff tells each tensor of the first checkpoint compared, in bytes of the whole, and stops when asked. */
START_TEST(diff_events_and_cancel)
{
    char *sample = test_testdata("sample");
    ckpt_source *src = test_open(sample);
    uint64_t total = 0;
    for (size_t i = 0; i < ckpt_source_tensor_count(src); i++)
        total += ckpt_source_tensor(src, i)->nbytes;
    ckpt_diff_options d;
    ckpt_diff_options_default(&d);
    struct event_log l = {0};
    d.events = log_event;
    d.events_payload = &l;
    ckpt_error err;
    ck_assert_int_eq(ckpt_diff(sample, sample, &d, NULL, NULL, NULL, &err), CKPT_OK);
    ck_assert_uint_eq(l.tensors, ckpt_source_tensor_count(src));
    ck_assert_uint_eq(l.files, 0);
    ck_assert_uint_eq(l.last_total, total);
    ck_assert_uint_eq(l.last_done, total);
    ck_assert_int_eq(l.bad, 0);
    struct event_log stop = {.stop_after = 3};
    d.events_payload = &stop;
    ck_assert_int_eq(ckpt_diff(sample, sample, &d, NULL, NULL, NULL, &err), CKPT_ERR_CANCELLED);
    ck_assert_uint_eq(stop.tensors, 3);
    ckpt_source_free(src);
    free(sample);
}
END_TEST

static Suite *options_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("options");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, defaults_set_size);
    tcase_add_test(tc, older_smaller_structs_are_read_as_far_as_they_go);
    tcase_add_test(tc, unknown_larger_structs_are_refused);
    tcase_add_test(tc, targets_and_float_types_by_name);
    tcase_add_test(tc, plan_without_target);
    tcase_add_test(tc, open_events_and_cancel);
    tcase_add_test(tc, diff_events_and_cancel);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(options_suite());
}
