/*
 * test_cli_global.c: what every ckpt command does the same way (issue 21): the
 * global flags, Ctrl-C, "did you mean", destination parents, messages that
 * name what failed, plurals, help that fits 80 columns, portable manifests,
 * and the temporary folders killed runs leave.
 */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every command line of the program, on the sample and what is made from it under `dir`. */
struct lines {
    char inspect[1024], convert[1024], verify[1024], diff[1024], sums[1024], pack[1024], unpack[1024];
};

static void command_lines(struct lines *l, const char *sample, const char *dir, const char *tag)
{
    snprintf(l->inspect, sizeof l->inspect, "inspect '%s'", sample);
    snprintf(l->convert, sizeof l->convert, "convert '%s' '%s/c%s' --target nd", sample, dir, tag);
    snprintf(l->verify, sizeof l->verify, "verify '%s/ref'", dir);
    snprintf(l->diff, sizeof l->diff, "diff '%s' '%s/ref'", sample, dir);
    snprintf(l->sums, sizeof l->sums, "manifest sums '%s'", sample);
    snprintf(l->pack, sizeof l->pack, "pack '%s' '%s/p%s.ckb'", sample, dir, tag);
    snprintf(l->unpack, sizeof l->unpack, "unpack '%s/ref.ckb' '%s/u%s'", dir, dir, tag);
}

/* A folder with `ref` (sample converted) and `ref.ckb` (sample packed). */
static char *reference_dir(const char *sample)
{
    char *dir = test_tmpdir();
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/ref' --target nd -q", sample, dir), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "pack '%s' '%s/ref.ckb' -q", sample, dir), 0);
    return dir;
}

/* -q, -v, --progress and -j before or after any command; -q leaves standard output empty. */
START_TEST(global_flags_everywhere)
{
    char *sample = test_testdata("sample"), *dir = reference_dir(sample);
    struct lines l;
    const char *before[] = {"-q", "-q -j 2 --progress=never", "--quiet --jobs=2 --progress never"};
    for (int k = 0; k < 3; k++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%d", k);
        command_lines(&l, sample, dir, tag);
        const char *all[] = {l.inspect, l.convert, l.verify, l.diff, l.pack, l.unpack};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            char *out, *err;
            ck_assert_msg(test_ckpt(&out, &err, "%s %s", before[k], all[i]) == 0, "%s %s: %s", before[k], all[i], err);
            ck_assert_msg(strcmp(out, "") == 0, "ckpt %s %s printed: %s", before[k], all[i], out);
            free(out);
            free(err);
        }
    }
    command_lines(&l, sample, dir, "after");
    const char *all[] = {l.inspect, l.convert, l.verify, l.diff, l.pack, l.unpack};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char *out;
        ck_assert_int_eq(test_ckpt(&out, NULL, "%s -j 1 --progress=always -q", all[i]), 0);
        ck_assert_msg(strcmp(out, "") == 0, "ckpt %s -q printed: %s", all[i], out);
        free(out);
    }
    /* -q keeps the output asked for: the checksum lines */
    char *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "-q %s", l.sums), 0);
    ck_assert_ptr_nonnull(strstr(out, "model-00001-of-00002.safetensors"));
    free(out);
    /* -v: verify prints its passing checks */
    ck_assert_int_eq(test_ckpt(&out, NULL, "%s -v", l.verify), 0);
    ck_assert_ptr_nonnull(strstr(out, "ok   file"));
    free(out);
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "--progress=sometimes %s", l.inspect), 2);
    ck_assert_ptr_nonnull(strstr(err, "--progress takes auto, always or never, not 'sometimes'"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "%s -j 0", l.verify), 2);
    ck_assert_ptr_nonnull(strstr(err, "--jobs takes 1 to 256"));
    free(err);
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

/* Each help names the global flags, and no help line is wider than a terminal's 80 columns. */
START_TEST(help_fits_80_columns)
{
    static const char *const helps[] = {"--help", "inspect --help", "convert --help", "verify --help", "diff --help",
                                        "manifest --help", "manifest sums --help", "manifest create --help",
                                        "pack --help", "unpack --help"};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        char *out;
        ck_assert_int_eq(test_ckpt(&out, NULL, "%s", helps[i]), 0);
        ck_assert_msg(strstr(out, "-q, --quiet") && strstr(out, "--progress WHEN") && strstr(out, "-j, --jobs N"),
                      "ckpt %s lacks the global options", helps[i]);
        size_t line = 1;
        for (char *p = out, *nl; *p; p = nl + 1, line++) {
            nl = strchr(p, '\n');
            if (!nl)
                nl = p + strlen(p) - 1;
            ck_assert_msg(nl - p <= 80, "ckpt %s: line %zu has %d columns: %.*s", helps[i], line, (int)(nl - p),
                          (int)(nl - p), p);
        }
        free(out);
    }
}
END_TEST

/* diff draws a progress line like convert and verify (on a terminal, or when asked). */
START_TEST(diff_progress_line)
{
    char *sample = test_testdata("sample"), *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "diff '%s' '%s' --progress=always", sample, sample), 0);
    ck_assert_msg(strstr(err, "100.0%"), "no progress line: %s", err);
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "diff '%s' '%s'", sample, sample), 0);
    ck_assert_str_eq(err, "");   /* auto: standard error is not a terminal */
    free(err);
    free(sample);
}
END_TEST

/*
 * Ctrl-C at every point of each command (CKPT_TEST_INTERRUPT=N raises SIGINT
 * at the Nth callback: no timing) exits 130 and leaves no output behind; past
 * the last callback the command completes.
 */
START_TEST(ctrl_c_exits_130_everywhere)
{
    char *sample = test_testdata("sample"), *dir = reference_dir(sample);
    struct lines l;
    command_lines(&l, sample, dir, "x");
    char against[1200];
    snprintf(against, sizeof against, "%s --against '%s'", l.verify, sample);
    const char *all[] = {l.inspect, l.convert, l.verify, against, l.diff, l.sums, l.pack, l.unpack};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        int status = 130, n;
        for (n = 1; n < 500 && status == 130; n++) {
            char env[16];
            snprintf(env, sizeof env, "%d", n);
            setenv("CKPT_TEST_INTERRUPT", env, 1);
            status = test_ckpt(NULL, NULL, "%s -q", all[i]);
            unsetenv("CKPT_TEST_INTERRUPT");
            if (status == 130) {   /* nothing it was writing is left: only ref, ref.ckb */
                ck_assert_msg(test_count_entries(dir) == 2, "ckpt %s interrupted at callback %d left files", all[i], n);
            }
        }
        ck_assert_msg(status == 0, "ckpt %s, interrupted at callback %d, exited %d", all[i], n - 1, status);
        ck_assert_msg(n > 2, "ckpt %s was never interrupted", all[i]);
        char cleanup[1400];
        snprintf(cleanup, sizeof cleanup, "rm -rf '%s/cx' '%s/px.ckb' '%s/ux'", dir, dir, dir);
        ck_assert_int_eq(system(cleanup), 0);
    }
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

/* Common spellings get a "did you mean"; a word far from every choice does not. */
START_TEST(did_you_mean)
{
    char *sample = test_testdata("sample"), *dir = test_tmpdir();
    static const struct {
        const char *args, *hint;
    } cases[] = {
        {"--target 910b", "did you mean 'ascend-910b'?"},   {"--target Ascend910B", "did you mean 'ascend-910b'?"},
        {"--target 310P", "did you mean 'ascend-310p'?"},   {"--target ascend-910", "did you mean 'ascend-910b'?"},
        {"--target nd --dtype fp16", "did you mean 'f16'?"}, {"--target nd --dtype float16", "did you mean 'f16'?"},
        {"--target nd --dtype BF-16", "did you mean 'bf16'?"}, {"--target nd --dtype bfloat16", "did you mean 'bf16'?"},
        {"--target nd --dtype float", "did you mean 'f32'?"}, {"--target nd --dtype FP32", "did you mean 'f32'?"},
        {"--target nd --nz nz", NULL},                      {"--target nd --overflow saturated", "did you mean 'saturate'?"},
        {"--target nd --quant w8a8", "did you mean 'w8a8-dynamic'?"}, {"--target gpu", NULL},
        {"--target nd --deepspeed-weights fp16", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err;
        ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' %s", sample, dir, cases[i].args), 2);
        if (cases[i].hint)
            ck_assert_msg(strstr(err, cases[i].hint), "%s: %s", cases[i].args, err);
        else
            ck_assert_msg(!strstr(err, "did you mean"), "%s: %s", cases[i].args, err);
        free(err);
    }
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "verfy x"), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown command 'verfy'; did you mean 'verify'?"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --taget nd", sample, dir), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown option '--taget'; did you mean '--target'?"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target", sample, dir), 2);
    ck_assert_ptr_nonnull(strstr(err, "--target needs a value"));
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "-qv inspect '%s'", sample), 0);
    free(err);
    ck_assert_int_eq(test_ckpt(NULL, &err, "manifest sums '%s' --format sha-256", sample), 2);
    ck_assert_ptr_nonnull(strstr(err, "did you mean 'sha256'?"));
    free(err);
    ck_assert_uint_eq(test_count_entries(dir), 0);
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

/* Missing parent folders of a destination are made, as mkdir -p does. */
START_TEST(destination_parents_are_made)
{
    char *sample = test_testdata("sample"), *dir = test_tmpdir();
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/a/b/c/out' --target nd -q", sample, dir), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s/a/b/c/out' -q", dir), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "pack '%s' '%s/x/y/s.ckb' -q", sample, dir), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "unpack '%s/x/y/s.ckb' '%s/p/q/u' -q", dir, dir), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "diff '%s' '%s/p/q/u' -q", sample, dir), 0);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/parts/o' --target nd -q --part 1/1", sample, dir), 0);
    /* a parent that is a file is refused, naming it */
    char *file = test_join(dir, "f"), *err;
    test_write_file(file, "x", 1);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/f/out' --target nd", sample, dir), 4);
    ck_assert_msg(strstr(err, file), "%s", err);
    free(err);
    free(file);
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

/* A one-tensor F32 checkpoint whose only value overflows f16. */
static char *write_big(const char *dir)
{
    char *path = test_join(dir, "big.safetensors");
    static const uint64_t shape[] = {2};
    const ckpt_tensor t = {.name = "layers.0.big", .dtype = CKPT_DTYPE_F32, .rank = 1, .shape = shape};
    const float values[2] = {1.0f, 1e30f};
    ckpt_writer *w;
    ckpt_error e;
    ck_assert_int_eq(ckpt_writer_open(&w, path, &t, 1, NULL, 0, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_write(w, values, sizeof values, &e), CKPT_OK);
    ck_assert_int_eq(ckpt_writer_finish(w, &e), CKPT_OK);
    ckpt_writer_free(w);
    return path;
}

/* --overflow error names the tensor and its file. */
START_TEST(overflow_error_names_tensor_and_file)
{
    char *dir = test_tmpdir(), *big = write_big(dir), *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/o' --target ascend-310p --overflow error", big, dir), 3);
    ck_assert_msg(strstr(err, "tensor layers.0.big") && strstr(err, big) && strstr(err, "1 values overflow F16"),
                  "%s", err);
    free(err);
    ck_assert_uint_eq(test_count_entries(dir), 1);
    test_rmtree(dir);
    free(big);
    free(dir);
}
END_TEST

/* "1 tensor", "1 check", "1 shard": counts of one are said in the singular. */
START_TEST(plurals)
{
    char *dir = test_tmpdir(), *big = write_big(dir), *out;
    ck_assert_int_eq(test_ckpt(&out, NULL, "convert '%s' '%s/o' --target nd -v", big, dir), 0);
    ck_assert_msg(strstr(out, "plan: 1 tensor, 1 shard,") && strstr(out, "converted 1 tensor,"), "%s", out);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "diff '%s' '%s/o' --names-only", big, dir), 0);
    ck_assert_msg(strstr(out, "diff: 1 check, 0 failed"), "%s", out);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "pack '%s' '%s/b.ckb'", big, dir), 0);
    ck_assert_msg(strstr(out, "packed 1 file,"), "%s", out);
    free(out);
    ck_assert_int_eq(test_ckpt(&out, NULL, "unpack '%s/b.ckb' '%s/u'", dir, dir), 0);
    ck_assert_msg(strstr(out, "unpacked 1 file,"), "%s", out);
    free(out);
    test_rmtree(dir);
    free(big);
    free(dir);
}
END_TEST

/* The manifest names the source relative to its folder, never by this machine's absolute path. */
START_TEST(manifest_has_no_absolute_paths)
{
    char *sample = test_testdata("sample"), *dir = test_tmpdir();
    char real[4096];
    ck_assert_ptr_nonnull(realpath(sample, real));
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/o' --target nd -q", real, dir), 0);
    char *manifest = test_join(dir, "o/ckpt-manifest.json");
    size_t len;
    char *text = (char *)test_read_file(manifest, &len);
    char *parent = strdup(real);
    *strrchr(parent, '/') = '\0';
    ck_assert_msg(!memmem(text, len, parent, strlen(parent)), "the manifest holds %s", parent);
    ck_assert_msg(!memmem(text, len, dir, strlen(dir)), "the manifest holds %s", dir);
    json_t *doc = json_loadb(text, len, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "source"), "path")), "sample");
    json_t *files = json_object_get(json_object_get(doc, "source"), "files");
    ck_assert_uint_ge(json_array_size(files), 2);
    for (size_t i = 0; i < json_array_size(files); i++) {
        const char *p = json_string_value(json_object_get(json_array_get(files, i), "path"));
        ck_assert_msg(strncmp(p, "sample/", 7) == 0, "source file %s", p);
    }
    json_decref(doc);
    ck_assert_int_eq(test_ckpt(NULL, NULL, "verify '%s/o' --against '%s' -q", dir, real), 0);
    free(parent);
    free(text);
    free(manifest);
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

/* A killed run's temporary folder: removed by the next run into its DST, named by a run into another. */
START_TEST(stale_temporary_folders)
{
    char *sample = test_testdata("sample"), *dir = test_tmpdir();
    char *mine = test_join(dir, ".out.ckpt-tmp-dead01"), *other = test_join(dir, ".other.ckpt-tmp-dead02");
    ck_assert_int_eq(mkdir(mine, 0755), 0);
    ck_assert_int_eq(mkdir(other, 0755), 0);
    char *f1 = test_join(mine, "model-00001-of-00002.safetensors"), *f2 = test_join(other, "x.safetensors");
    static const char kb[1024];
    test_write_file(f1, kb, sizeof kb);
    test_write_file(f2, kb, sizeof kb);
    char *err;
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/out' --target nd", sample, dir), 0);
    ck_assert_msg(strstr(err, "removing ") && strstr(err, mine) && strstr(err, "(1.0 KiB), left by an interrupted run"),
                  "%s", err);
    ck_assert_msg(strstr(err, other) && strstr(err, "rm -rf"), "%s", err);
    free(err);
    struct stat st;
    ck_assert_int_ne(stat(mine, &st), 0);
    ck_assert_int_eq(stat(other, &st), 0);
    ck_assert_int_eq(test_ckpt(NULL, &err, "convert '%s' '%s/out2' --target nd -q", sample, dir), 0);
    ck_assert_str_eq(err, "");   /* -q: errors only */
    free(err);
    free(f1);
    free(f2);
    free(mine);
    free(other);
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

/* Flips one byte in the middle of `path`. */
static void damage(const char *path)
{
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    data[len - len / 3] ^= 0x5a;
    test_write_file(path, data, len);
    free(data);
}

/*
 * Findings come out in the same order every run, whatever worker finds them:
 * verify and verify --against on 4 threads over a folder of 10 shards, every
 * other one damaged, print the same lines each time, in the manifest's order.
 */
#define SHARDS 10   /* the sample at --max-shard-size 30KB */
START_TEST(findings_in_a_stable_order)
{
    char *sample = test_testdata("sample"), *dir = test_tmpdir();
    ck_assert_int_eq(test_ckpt(NULL, NULL, "convert '%s' '%s/o' --target ascend-310p --max-shard-size 30KB -q", sample,
                               dir), 0);
    int damaged = 0;
    for (int k = 1; k <= SHARDS; k += 2) {
        char name[96];
        snprintf(name, sizeof name, "o/model-%05d-of-%05d.safetensors", k, SHARDS);
        char *path = test_join(dir, name);
        if (access(path, F_OK) == 0) {
            damage(path);
            damaged++;
        }
        free(path);
    }
    ck_assert_msg(damaged == (SHARDS + 1) / 2, "the sample gave other shards (%d damaged)", damaged);
    static const char *const modes[] = {"", "--against"};
    for (int m = 0; m < 2; m++) {
        char *first = NULL;
        for (int run = 0; run < 6; run++) {
            char *out;
            ck_assert_int_eq(test_ckpt(&out, NULL, "verify '%s/o' -j 4 -v %s %s", dir, modes[m], m ? sample : ""), 1);
            char *summary = strstr(out, "verify: ");   /* its time differs */
            ck_assert_ptr_nonnull(summary);
            *summary = '\0';
            if (!first)
                first = out;
            else {
                ck_assert_msg(strcmp(first, out) == 0, "run %d differs:\n%.1500s\n---\n%.1500s", run, first, out);
                free(out);
            }
        }
        /* the files' findings in shard order */
        const char *last = first;
        for (int k = 1; k <= SHARDS; k++) {
            char name[96];
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors: ", k, SHARDS);
            const char *at = strstr(first, name);
            if (!at)
                continue;
            ck_assert_msg(at >= last, "%s comes before an earlier shard's findings", name);
            last = at;
        }
        free(first);
    }
    test_rmtree(dir);
    free(dir);
    free(sample);
}
END_TEST

static Suite *cli_global_suite(void)
{
    Suite *s = suite_create("cli_global");
    TCase *tc = tcase_create("cli_global");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, global_flags_everywhere);
    tcase_add_test(tc, help_fits_80_columns);
    tcase_add_test(tc, diff_progress_line);
    tcase_add_test(tc, ctrl_c_exits_130_everywhere);
    tcase_add_test(tc, did_you_mean);
    tcase_add_test(tc, destination_parents_are_made);
    tcase_add_test(tc, overflow_error_names_tensor_and_file);
    tcase_add_test(tc, plurals);
    tcase_add_test(tc, manifest_has_no_absolute_paths);
    tcase_add_test(tc, stale_temporary_folders);
    tcase_add_test(tc, findings_in_a_stable_order);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_main(cli_global_suite());
}
