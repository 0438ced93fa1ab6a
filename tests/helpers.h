/* helpers.h: what every Check suite shares: paths, temp folders, files, running the CLI. */
#ifndef CKPT_TEST_HELPERS_H
#define CKPT_TEST_HELPERS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"

/* Runs the suite (no fork under a debugger-friendly CK_FORK=no) and returns the exit status. */
int test_main(Suite *suite);

/* A malloc'd path under $CKPT_EXTERNAL (../shared/external), $CKPT_TESTDATA or a fresh temp folder. */
char *test_external(const char *relative);
char *test_testdata(const char *relative);
char *test_tmpdir(void);

/* A malloc'd "dir/name". */
char *test_join(const char *dir, const char *name);

/* Writes or reads a whole file; failures fail the test. */
void test_write_file(const char *path, const void *data, size_t len);
uint8_t *test_read_file(const char *path, size_t *len);

/* Entries of a folder, "." and ".." aside. */
size_t test_count_entries(const char *dir);

/* Removes a folder tree (best effort). */
void test_rmtree(const char *path);

/*
 * Runs `ckpt ARGS` (the shell parses args) and returns its exit status; its
 * stdout and stderr are captured into *out and *errout when not NULL (malloc'd).
 */
int test_ckpt(char **out, char **errout, const char *args_fmt, ...);

/* Digests as the goldens and manifests spell them: FNV-1a 64 (16 hex digits), XXH3-128 canonical (32). */
void test_fnv1a_hex(const uint8_t *p, size_t n, char out[17]);
void test_xxh128_hex(const uint8_t *p, size_t n, char out[33]);

/* Opens a source or fails the test with the library's message. */
ckpt_source *test_open(const char *path);

/*
 * Every tensor of the golden file `golden_relative` (under testdata) is in
 * `src` with the same type, shape and bytes, and `src` has no other tensor;
 * `label` names `src` in failure messages.
 */
void test_expect_golden(const ckpt_source *src, const char *label, const char *golden_relative);

/* Reads a whole tensor by name into a malloc'd buffer; fails the test when absent. */
uint8_t *test_read_tensor(const ckpt_source *src, const char *name, const ckpt_tensor **info);

#endif
