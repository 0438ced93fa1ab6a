/*
 * sums_check.c: ckpt_verify_sums, a folder checked against a checksum list
 * (sha256sum, xxhsum, or a ckpt-manifest.json's files).  Files are hashed
 * on worker threads; findings are reported afterwards in list order, so
 * two runs on the same folder print the same report.
 */
#include "report.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/common/workers.h"
#include "libckpt/manifest/sums.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum outcome { PENDING = 0, MATCH, MISSING, NOT_FILE, SIZE_DIFFERS, DIGEST_DIFFERS, UNREADABLE };

struct result {
    enum outcome outcome;
    uint64_t size;
    char hex[SUMS_HEX_MAX + 1];
    char why[CKPT_ERROR_MESSAGE_MAX]; /* UNREADABLE: the error */
};

struct check_run {
    const char *dir;
    const struct sums_list *list;
    struct result *results;
    struct reporter *r;
    atomic_size_t next;
};

static int add_bytes(void *ctx, uint64_t bytes)
{
    struct reporter *r = ctx;
    reporter_add_bytes(r, bytes);
    return atomic_load(&r->stop);
}

static void check_one(struct check_run *run, size_t i)
{
    const struct sums_entry *e = &run->list->items[i];
    struct result *res = &run->results[i];
    size_t n = strlen(run->dir) + strlen(e->path) + 2;
    char *path = malloc(n);
    if (!path) {
        res->outcome = UNREADABLE;
        snprintf(res->why, sizeof res->why, "out of memory");
        return;
    }
    snprintf(path, n, "%s/%s", run->dir, e->path);
    struct stat st;
    if (stat(path, &st) != 0) {
        res->outcome = errno == ENOENT || errno == ENOTDIR ? MISSING : UNREADABLE;
        snprintf(res->why, sizeof res->why, "%s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        res->outcome = NOT_FILE;
    } else {
        res->size = (uint64_t)st.st_size;
        if (e->has_size && res->size != e->size) {
            res->outcome = SIZE_DIFFERS;   /* no need to read it */
        } else {
            ckpt_error err;
            int rc = sums_hash_file(path, e->path, e->format, res->hex, add_bytes, run->r, &run->r->stop, &err);
            if (rc == CKPT_ERR_CANCELLED) {
                res->outcome = PENDING;
            } else if (rc) {
                res->outcome = UNREADABLE;
                snprintf(res->why, sizeof res->why, "%s", err.message);
            } else {
                res->outcome = strcmp(res->hex, e->hex) == 0 ? MATCH : DIGEST_DIFFERS;
            }
        }
    }
    free(path);
}

static void *check_worker(void *arg)
{
    struct check_run *run = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&run->next, 1);
        if (i >= run->list->count || atomic_load(&run->r->stop))
            break;
        check_one(run, i);
    }
    return NULL;
}

static void report(struct reporter *r, const struct sums_entry *e, const struct result *res)
{
    ckpt_finding f = {.check = CKPT_CHECK_FILE, .ok = res->outcome == MATCH, .file = e->path};
    const char *algo = e->format == CKPT_SUMS_SHA256 ? "SHA-256" : e->format == SUMS_GIT_BLOB ? "git blob id" : "XXH3-128";
    switch (res->outcome) {
    case MATCH:
        report_finding(r, f, "%s: %s matches (%llu bytes)", e->path, algo, (unsigned long long)res->size);
        break;
    case MISSING: report_finding(r, f, "%s: missing", e->path); break;
    case NOT_FILE: report_finding(r, f, "%s: not a regular file", e->path); break;
    case SIZE_DIFFERS:
        report_finding(r, f, "%s: %llu bytes, the list says %llu", e->path, (unsigned long long)res->size,
                       (unsigned long long)e->size);
        break;
    case DIGEST_DIFFERS:
        report_finding(r, f, "%s: %s %s, the list says %s", e->path, algo, res->hex, e->hex);
        break;
    case UNREADABLE: report_finding(r, f, "%s: cannot be read: %s", e->path, res->why); break;
    case PENDING: break;
    }
}

/*
 * A source manifest's files that differ: opens `dir` as a checkpoint and hashes the logical bytes
 * of each tensor the manifest places in them, one finding each, so that the report names what
 * changed (or that every tensor is intact and only other bytes, a header or padding, differ).
 */
static void name_tensors(const char *dir, const struct sums_list *list, const struct result *results,
                         struct reporter *r)
{
    bool any = false;
    for (size_t i = 0; i < list->count && !any; i++)
        any = results[i].outcome == SIZE_DIFFERS || results[i].outcome == DIGEST_DIFFERS;
    if (!any || !list->tensor_count)
        return;
    ckpt_source *src = NULL;
    ckpt_error err;
    if (ckpt_source_open(&src, dir, NULL, &err) != CKPT_OK) {
        report_finding(r, (ckpt_finding){.check = CKPT_CHECK_TENSOR, .ok = 0},
                       "%s: its tensors cannot be compared: %s", dir, err.message);
        return;
    }
    for (size_t i = 0; i < list->count && !atomic_load(&r->stop); i++) {
        if (results[i].outcome != SIZE_DIFFERS && results[i].outcome != DIGEST_DIFFERS)
            continue;
        const char *file = list->items[i].path;
        for (size_t k = 0; k < list->tensor_count && !atomic_load(&r->stop); k++) {
            const struct sums_tensor *t = &list->tensors[k];
            if (strcmp(t->file, file) != 0)
                continue;
            ckpt_finding f = {.check = CKPT_CHECK_TENSOR, .file = file, .tensor = t->name};
            size_t index;
            char hex[33];
            if (ckpt_source_find(src, t->name, &index) != CKPT_OK) {
                report_finding(r, f, "%s: tensor %s is gone", file, t->name);
            } else if (sums_tensor_hash(src, index, hex, NULL, NULL, &r->stop, &err) != CKPT_OK) {
                report_finding(r, f, "%s: tensor %s cannot be read: %s", file, t->name, err.message);
            } else if ((f.ok = strcmp(hex, t->hex) == 0)) {
                report_finding(r, f, "%s: tensor %s unchanged", file, t->name);
            } else {
                report_finding(r, f, "%s: tensor %s changed (xxh3 %s, the manifest says %s)", file, t->name, hex,
                               t->hex);
            }
        }
    }
    ckpt_source_free(src);
}

int ckpt_verify_sums(const char *dir, const char *sums, const ckpt_sums_options *opts, ckpt_finding_fn fn,
                     void *payload, ckpt_verify_summary *summary, ckpt_error *err)
{
    ckpt_error_clear(err);
    double start = now_seconds();
    ckpt_sums_options taken;
    ckpt_sums_options_default(&taken);
    int taken_rc = options_take(&taken, sizeof taken, opts, "ckpt_sums_options", err);
    if (taken_rc)
        return taken_rc;
    opts = &taken;
    if (!dir || !sums)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_verify_sums: no folder or no list");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: not a folder", dir);
    struct sums_list list;
    int rc = sums_list_read(sums, &list, err);
    if (rc) {
        sums_list_free(&list);
        return rc;
    }
    struct reporter r;
    reporter_init(&r, fn, payload);
    r.progress = opts->progress;
    r.progress_payload = opts->progress_payload;
    struct check_run run = {.dir = dir, .list = &list, .r = &r};
    run.results = calloc(list.count + 1, sizeof *run.results);
    if (!run.results)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < list.count; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, list.items[i].path) < (int)sizeof path &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode) && !ckpt_add_u64(r.total_bytes, (uint64_t)st.st_size,
                                                                          &r.total_bytes))
            r.total_bytes = UINT64_MAX;
    }
    if (!rc)
        run_on_threads(worker_count(opts->jobs, list.count), check_worker, &run);
    size_t skipped = 0;
    for (size_t i = 0; !rc && i < list.count && !atomic_load(&r.stop); i++) {
        if (opts->ignore_missing && run.results[i].outcome == MISSING)
            skipped++;   /* as sha256sum --ignore-missing: a file the copy left out on purpose */
        else
            report(&r, &list.items[i], &run.results[i]);
    }
    if (!rc && skipped && skipped == list.count)
        report_finding(&r, (ckpt_finding){.check = CKPT_CHECK_FILE, .ok = 0},
                       "%s: none of the %zu files %s lists is there", dir, list.count, sums);
    if (!rc && !atomic_load(&r.stop))
        name_tensors(dir, &list, run.results, &r);
    r.summary.seconds = now_seconds() - start;
    if (summary)
        *summary = r.summary;
    if (!rc && r.cancelled)
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: verification cancelled", dir);
    if (!rc && r.summary.failures)
        rc = ckpt_fail(err, CKPT_ERR_MISMATCH, "%s: %llu of %llu files differ from %s", dir,
                       (unsigned long long)r.summary.failures, (unsigned long long)r.summary.checks, sums);
    free(run.results);
    reporter_free(&r);
    sums_list_free(&list);
    return rc;
}
