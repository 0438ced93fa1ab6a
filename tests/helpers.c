/* helpers.c: see helpers.h. */
#include "helpers.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

int test_main(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static char *env_path(const char *var, const char *relative)
{
    const char *base = getenv(var);
    ck_assert_msg(base != NULL, "%s is not set: run the tests through make check", var);
    return test_join(base, relative);
}

char *test_external(const char *relative)
{
    return env_path("CKPT_EXTERNAL", relative);
}

char *test_testdata(const char *relative)
{
    return env_path("CKPT_TESTDATA", relative);
}

char *test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = test_join(base && *base ? base : "/tmp", "ckpt-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    return tmpl;
}

char *test_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

uint8_t *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

size_t test_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot list %s", dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

void test_rmtree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

static char *slurp(const char *path)
{
    size_t n;
    uint8_t *buf = test_read_file(path, &n);
    char *s = realloc(buf, n + 1);
    ck_assert_ptr_nonnull(s);
    s[n] = '\0';
    return s;
}

int test_ckpt(char **out, char **errout, const char *args_fmt, ...)
{
    char args[8192], cmd[16384];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    const char *bin = getenv("CKPT_BIN");
    ck_assert_msg(bin != NULL, "CKPT_BIN is not set: run the tests through make check");
    char *dir = test_tmpdir();
    char *o = test_join(dir, "out"), *e = test_join(dir, "err");
    snprintf(cmd, sizeof cmd, "%s %s >'%s' 2>'%s' </dev/null", bin, args, o, e);
    int status = system(cmd);
    ck_assert_msg(status != -1 && WIFEXITED(status), "could not run: %s", cmd);
    if (out)
        *out = slurp(o);
    if (errout)
        *errout = slurp(e);
    test_rmtree(dir);
    free(o);
    free(e);
    free(dir);
    return WEXITSTATUS(status);
}

void test_fnv1a_hex(const uint8_t *p, size_t n, char out[17])
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001B3ull;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void test_xxh128_hex(const uint8_t *p, size_t n, char out[33])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
    for (int k = 0; k < 16; k++)
        snprintf(out + 2 * k, 3, "%02x", c.digest[k]);
}

ckpt_source *test_open(const char *path)
{
    ckpt_source *src = NULL;
    ckpt_error err;
    int rc = ckpt_source_open(&src, path, NULL, &err);
    ck_assert_msg(rc == CKPT_OK, "open %s: %s", path, err.message);
    return src;
}

uint8_t *test_read_tensor(const ckpt_source *src, const char *name, const ckpt_tensor **info)
{
    size_t i;
    ck_assert_msg(ckpt_source_find(src, name, &i) == CKPT_OK, "no tensor %s", name);
    const ckpt_tensor *t = ckpt_source_tensor(src, i);
    uint8_t *buf = malloc(t->nbytes ? t->nbytes : 1);
    ck_assert_ptr_nonnull(buf);
    ckpt_error err;
    int rc = ckpt_source_read(src, i, 0, ckpt_tensor_rows(t), buf, t->nbytes, &err);
    ck_assert_msg(rc == CKPT_OK, "read %s: %s", name, err.message);
    if (info)
        *info = t;
    return buf;
}

void test_expect_golden(const ckpt_source *src, const char *label, const char *golden_relative)
{
    char *golden_path = test_testdata(golden_relative);
    ckpt_source *golden = test_open(golden_path);
    ck_assert_uint_eq(ckpt_source_tensor_count(src), ckpt_source_tensor_count(golden));
    for (size_t i = 0; i < ckpt_source_tensor_count(golden); i++) {
        const ckpt_tensor *want, *got;
        uint8_t *w = test_read_tensor(golden, ckpt_source_tensor(golden, i)->name, &want);
        uint8_t *g = test_read_tensor(src, want->name, &got);
        ck_assert_msg(got->dtype == want->dtype, "%s: %s: dtype %s", label, want->name, ckpt_dtype_name(got->dtype));
        ck_assert_uint_eq(got->rank, want->rank);
        ck_assert_mem_eq(got->shape, want->shape, want->rank * sizeof *want->shape);
        ck_assert_uint_eq(got->nbytes, want->nbytes);
        ck_assert_msg(memcmp(g, w, want->nbytes) == 0, "%s: %s differs from the original", label, want->name);
        free(w);
        free(g);
    }
    ckpt_source_free(golden);
    free(golden_path);
}
