/*
 * verify.c: `ckpt verify`: a converted folder checked against its manifest.
 *
 * Each listed file is read once, sequentially, for its checksum.  Only when
 * that fails is it read again, feeding each chunk to the checksums of the
 * tensors whose bytes it holds, so that the report names the tensor: an
 * intact folder costs one hash per byte.  Shard headers are compared
 * entry by entry with the manifest, so an edited header is caught even when
 * someone also edited the manifest's file checksum.  Files are spread over
 * worker threads.
 */
#include "bundle_check.h"
#include "fidelity.h"
#include "folder_rules.h"
#include "report.h"

#include "formats/bundle/bundle.h"
#include "formats/registry/open.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/common/workers.h"
#include "libckpt/manifest/manifest.h"
#include "libckpt/manifest/records.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES ((size_t)1 << 20)   /* read then hashed while still in cache */
#define HEADER_MAX_BYTES 100000000u

/* ---- one file ---- */

struct file_check {
    const struct manifest *m;
    const char *dir;
    struct reporter *r;
    const ckpt_open_options *open;   /* how shards are opened to hold them to a source's rules */
    size_t file;
    size_t *tensors;      /* manifest indices of the tensors stored in this file, by offset */
    size_t count;
};

static const struct manifest_tensor *tensor_at(const struct file_check *fc, size_t k)
{
    return &fc->m->tensors[fc->tensors[k]];
}

static bool same_shape(const json_t *a, const uint64_t *shape, uint32_t rank)
{
    if (!json_is_array(a) || json_array_size(a) != rank)
        return false;
    for (uint32_t d = 0; d < rank; d++)
        if (!json_is_integer(json_array_get(a, d)) || (uint64_t)json_integer_value(json_array_get(a, d)) != shape[d])
            return false;
    return true;
}

/* The header's description of tensor `t` against the manifest's; NULL when they agree. */
static const char *header_disagreement(const json_t *header, const json_t *meta, const struct manifest_tensor *t)
{
    const json_t *e = json_object_get(header, t->name);
    if (!json_is_object(e))
        return "is missing from the shard header";
    const json_t *off = json_object_get(e, "data_offsets");
    if (!json_is_string(json_object_get(e, "dtype")) ||
        strcmp(json_string_value(json_object_get(e, "dtype")), ckpt_dtype_name(t->dtype)) != 0)
        return "has another dtype in the shard header";
    if (!same_shape(json_object_get(e, "shape"), t->shape, t->rank))
        return "has another shape in the shard header";
    if (!same_shape(off, (uint64_t[]){t->offset, t->offset + t->nbytes}, 2))
        return "has other data_offsets in the shard header";
    /* names go up to 64 KiB: a fixed buffer would cut the key of a long one and miss its layout */
    char *key = NULL;
    if (asprintf(&key, "%s%s", LAYOUT_KEY_PREFIX, t->name) < 0)
        return "cannot be checked (out of memory)";
    const char *layout = json_string_value(json_object_get(meta, key));
    free(key);
    if ((t->layout == CKPT_LAYOUT_FRACTAL_NZ) != (layout != NULL))
        return "has another layout in the shard metadata";
    if (layout) {
        json_t *l = json_loads(layout, 0, NULL);
        bool ok = l && json_is_string(json_object_get(l, "layout")) &&
                  strcmp(json_string_value(json_object_get(l, "layout")), "FRACTAL_NZ") == 0 &&
                  same_shape(json_object_get(l, "nd_shape"), t->nd_shape, t->nd_rank) &&
                  json_is_true(json_object_get(l, "transposed")) == t->transposed &&
                  (!json_object_get(l, "c0") || (uint64_t)json_integer_value(json_object_get(l, "c0")) == t->nz_c0) &&
                  (!json_object_get(l, "storage_shape") || same_shape(json_object_get(l, "storage_shape"), t->shape,
                                                                      t->rank));
        json_decref(l);
        if (!ok)
            return "has another layout in the shard metadata";
    }
    return NULL;
}

/* Compares the shard header with the manifest; returns the data start in *data_start (0 if unreadable). */
static void check_header(struct file_check *fc, int fd, uint64_t size, uint64_t *data_start)
{
    const char *name = fc->m->files[fc->file].path;
    uint8_t len_le[8];
    json_t *header = NULL;
    *data_start = 0;
    if (size >= 8 && pread(fd, len_le, 8, 0) == 8) {
        uint64_t len = ckpt_load_le64(len_le);
        char *text = len <= HEADER_MAX_BYTES && len <= size - 8 ? malloc(len ? len : 1) : NULL;
        if (text && pread(fd, text, len, 8) == (ssize_t)len) {
            header = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
            *data_start = 8 + len;
        }
        free(text);
    }
    ckpt_finding f = {.check = CKPT_CHECK_HEADER, .file = name};
    if (!json_is_object(header)) {
        report_finding(fc->r, f, "%s: the safetensors header cannot be read", name);
        json_decref(header);
        return;
    }
    const json_t *meta = json_object_get(header, "__metadata__");
    for (size_t k = 0; k < fc->count; k++) {
        const struct manifest_tensor *t = tensor_at(fc, k);
        const char *why = header_disagreement(header, meta, t);
        f.tensor = t->name;
        f.ok = why == NULL;
        if (why)
            report_finding(fc->r, f, "%s: tensor %s %s", name, t->name, why);
        else
            report_finding(fc->r, f, "%s: header entry agrees with the manifest", t->name);
    }
    size_t listed = json_object_size(header) - (meta != NULL);
    if (listed != fc->count) {
        f.tensor = NULL;
        f.ok = 0;
        report_finding(fc->r, f, "%s: the header holds %zu tensors, the manifest lists %zu", name, listed, fc->count);
    }
    json_decref(header);
}

/*
 * A read-ahead ring: one thread pread()s the file into RING_SLOTS buffers in
 * order while the caller hashes them in the same order, so that copying
 * from the page cache and hashing run on two cores at once instead of one
 * after the other (one big shard would otherwise verify at the speed of
 * copy plus hash).
 */
#define RING_SLOTS 4

struct ring {
    int fd;
    uint64_t size;
    uint8_t *buf[RING_SLOTS];
    size_t len[RING_SLOTS];
    bool full[RING_SLOTS];
    int error;              /* errno of a failed read, or -1 for a file that shrank */
    bool stop;
    pthread_mutex_t lock;
    pthread_cond_t changed;
};

static void *ring_reader(void *arg)
{
    struct ring *r = arg;
    uint64_t at = 0;
    for (size_t slot = 0; at < r->size; slot = (slot + 1) % RING_SLOTS) {
        pthread_mutex_lock(&r->lock);
        while (r->full[slot] && !r->stop)
            pthread_cond_wait(&r->changed, &r->lock);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        size_t want = r->size - at < CHUNK_BYTES ? (size_t)(r->size - at) : CHUNK_BYTES, got = 0;
        int error = 0;
        while (got < want && !error) {
            ssize_t n = pread(r->fd, r->buf[slot] + got, want - got, (off_t)(at + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                error = n < 0 ? errno : -1;
            else
                got += (size_t)n;
        }
        pthread_mutex_lock(&r->lock);
        r->len[slot] = got;
        r->full[slot] = true;
        r->error = error;
        pthread_cond_broadcast(&r->changed);
        pthread_mutex_unlock(&r->lock);
        if (error)
            break;
        at += got;
    }
    return NULL;
}

/* The file's checksum through the ring; false when the ring cannot start (the caller then reads alone). */
static bool hash_ringed(struct file_check *fc, int fd, uint64_t size, XXH128_hash_t *out, int *rc, ckpt_error *err)
{
    struct ring r = {.fd = fd, .size = size, .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
    XXH3_state_t *state = XXH3_createState();
    bool ok = state != NULL;
    for (int k = 0; k < RING_SLOTS && ok; k++)
        ok = (r.buf[k] = malloc(CHUNK_BYTES)) != NULL;
    pthread_t reader;
    if (ok)
        ok = pthread_create(&reader, NULL, ring_reader, &r) == 0;
    if (!ok) {
        for (int k = 0; k < RING_SLOTS; k++)
            free(r.buf[k]);
        XXH3_freeState(state);
        return false;
    }
    XXH3_128bits_reset(state);
    *rc = CKPT_OK;
    for (uint64_t at = 0, slot = 0; at < size && !*rc; slot = (slot + 1) % RING_SLOTS) {
        pthread_mutex_lock(&r.lock);
        while (!r.full[slot] && !r.error)
            pthread_cond_wait(&r.changed, &r.lock);
        int error = r.full[slot] ? 0 : r.error;
        pthread_mutex_unlock(&r.lock);
        if (error || atomic_load(&fc->r->stop)) {
            if (error)
                *rc = ckpt_fail(err, CKPT_ERR_READ, "%s/%s: read failed: %s", fc->dir, fc->m->files[fc->file].path,
                                error > 0 ? strerror(error) : "file shrank");
            break;
        }
        XXH3_128bits_update(state, r.buf[slot], r.len[slot]);
        reporter_add_bytes(fc->r, r.len[slot]);
        at += r.len[slot];
        pthread_mutex_lock(&r.lock);
        r.full[slot] = false;
        pthread_cond_broadcast(&r.changed);
        pthread_mutex_unlock(&r.lock);
    }
    pthread_mutex_lock(&r.lock);
    r.stop = true;
    pthread_cond_broadcast(&r.changed);
    pthread_mutex_unlock(&r.lock);
    pthread_join(reader, NULL);
    if (!*rc)
        *out = XXH3_128bits_digest(state);
    for (int k = 0; k < RING_SLOTS; k++)
        free(r.buf[k]);
    XXH3_freeState(state);
    return true;
}

/* One sequential pass: the file's checksum, or (with `states`) each tensor's. */
static int hash_pass(struct file_check *fc, int fd, uint64_t size, uint64_t data_start, XXH128_hash_t *file_hash,
                     XXH3_state_t **states, ckpt_error *err)
{
    int ringed_rc;
    if (!states && hash_ringed(fc, fd, size, file_hash, &ringed_rc, err))
        return ringed_rc;
    XXH3_state_t *fs = XXH3_createState();
    uint8_t *buf = malloc(CHUNK_BYTES);
    int rc = fs && buf ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc)
        XXH3_128bits_reset(fs);
    for (uint64_t at = 0; at < size && !rc && !atomic_load(&fc->r->stop);) {
        ssize_t n = pread(fd, buf, size - at < CHUNK_BYTES ? (size_t)(size - at) : CHUNK_BYTES, (off_t)at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = ckpt_fail(err, CKPT_ERR_READ, "%s/%s: read failed: %s", fc->dir, fc->m->files[fc->file].path,
                           n < 0 ? strerror(errno) : "file shrank");
            break;
        }
        if (!states)
            XXH3_128bits_update(fs, buf, (size_t)n);
        for (size_t k = 0; states && data_start && k < fc->count; k++) {
            const struct manifest_tensor *t = tensor_at(fc, k);
            uint64_t lo = data_start + t->offset, hi = lo + t->nbytes;   /* manifest_load checked no overflow */
            uint64_t a = lo > at ? lo : at, b = hi < at + (uint64_t)n ? hi : at + (uint64_t)n;
            if (a < b)
                XXH3_128bits_update(states[k], buf + (a - at), (size_t)(b - a));
        }
        reporter_add_bytes(fc->r, (uint64_t)n);
        at += (uint64_t)n;
    }
    if (!rc && !states)
        *file_hash = XXH3_128bits_digest(fs);
    XXH3_freeState(fs);
    free(buf);
    return rc;
}

static void check_tensors(struct file_check *fc, uint64_t size, uint64_t data_start, XXH3_state_t **states)
{
    const char *name = fc->m->files[fc->file].path;
    ckpt_finding f = {.check = CKPT_CHECK_TENSOR, .file = name};
    for (size_t k = 0; k < fc->count; k++) {
        const struct manifest_tensor *t = tensor_at(fc, k);
        char hex[33];
        f.tensor = t->name;
        f.ok = 0;
        if (!data_start) {
            report_finding(fc->r, f, "%s: tensor %s cannot be located: the header is unreadable", name, t->name);
            continue;
        }
        if (data_start + t->offset + t->nbytes > size) {
            report_finding(fc->r, f, "%s: tensor %s lies past the end of the file (truncated)", name, t->name);
            continue;
        }
        hash_hex(XXH3_128bits_digest(states[k]), hex);
        f.ok = strcmp(hex, t->xxh3_128) == 0;
        if (f.ok)
            report_finding(fc->r, f, "%s: %llu bytes match", t->name, (unsigned long long)t->nbytes);
        else
            report_finding(fc->r, f, "%s: tensor %s: stored bytes changed (xxh3 %s, manifest %s)", name, t->name, hex,
                           t->xxh3_128);
    }
}

static int by_offset(const void *a, const void *b, void *ctx)
{
    const struct manifest *m = ctx;
    uint64_t x = m->tensors[*(const size_t *)a].offset, y = m->tensors[*(const size_t *)b].offset;
    return x < y ? -1 : x > y;
}

static int verify_file(struct file_check *fc, ckpt_error *err)
{
    const struct manifest_file *mf = &fc->m->files[fc->file];
    ckpt_finding f = {.check = CKPT_CHECK_FILE, .file = mf->path};
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fc->dir, mf->path);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        report_finding(fc->r, f, "%s: missing", mf->path);
        for (size_t k = 0; k < fc->count; k++) {
            ckpt_finding t = {.check = CKPT_CHECK_TENSOR, .file = mf->path, .tensor = tensor_at(fc, k)->name};
            report_finding(fc->r, t, "%s: tensor %s is gone with its file", mf->path, t.tensor);
        }
        return CKPT_OK;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size, data_start = 0;
    size_t len = strlen(mf->path);
    if (len > 12 && strcmp(mf->path + len - 12, ".safetensors") == 0) {
        check_header(fc, fd, size, &data_start);
        check_shard_rules(fc->dir, mf->path, fc->open, fc->r);
    }
    XXH128_hash_t h = {0, 0};
    char hex[33];
    if (size > mf->size)
        reporter_add_total(fc->r, size - mf->size);
    int rc = hash_pass(fc, fd, size, data_start, &h, NULL, err);
    if (rc) {
        close(fd);
        return rc;
    }
    hash_hex(h, hex);
    f.ok = size == mf->size && strcmp(hex, mf->xxh3_128) == 0;
    if (size != mf->size)
        report_finding(fc->r, f, "%s: %llu bytes, the manifest says %llu", mf->path, (unsigned long long)size,
                       (unsigned long long)mf->size);
    else if (!f.ok)
        report_finding(fc->r, f, "%s: checksum %s, the manifest says %s", mf->path, hex, mf->xxh3_128);
    else
        report_finding(fc->r, f, "%s: %llu bytes, checksum matches", mf->path, (unsigned long long)size);
    if (f.ok || fc->count == 0) {
        /* the whole file matches, so every tensor in it does (or it holds none to look for) */
        for (size_t k = 0; k < fc->count; k++) {
            const struct manifest_tensor *t = tensor_at(fc, k);
            report_finding(fc->r,
                           (ckpt_finding){.check = CKPT_CHECK_TENSOR, .ok = 1, .file = mf->path, .tensor = t->name},
                           "%s: %llu bytes match (file checksum)", t->name, (unsigned long long)t->nbytes);
        }
        close(fd);
        return CKPT_OK;
    }
    XXH3_state_t **states = calloc(fc->count + 1, sizeof *states);
    rc = states ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < fc->count && !rc; k++)
        if (!(states[k] = XXH3_createState()))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        else
            XXH3_128bits_reset(states[k]);
    if (!rc) {
        reporter_add_total(fc->r, size);   /* a second pass, to find the tensors that changed */
        rc = hash_pass(fc, fd, size, data_start, &h, states, err);
    }
    close(fd);
    if (!rc)
        check_tensors(fc, size, data_start, states);
    for (size_t k = 0; states && k < fc->count; k++)
        XXH3_freeState(states[k]);
    free(states);
    return rc;
}

/* ---- the folder ---- */

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Files in the folder the manifest does not list, by name (the same order on every filesystem). */
static void check_extra_files(const char *dir, const struct manifest *m, struct reporter *r)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, by_name);
    for (int k = 0; k < n; k++) {
        const struct dirent *e = names[k];
        bool listed = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                      strcmp(e->d_name, MANIFEST_NAME) == 0;
        for (size_t i = 0; i < m->file_count && !listed; i++)
            listed = strcmp(m->files[i].path, e->d_name) == 0;
        if (!listed)
            report_finding(r, (ckpt_finding){.check = CKPT_CHECK_EXTRA_FILE, .file = e->d_name},
                           "%s: not listed in the manifest", e->d_name);
    }
    for (int k = 0; k < n; k++)
        free(names[k]);
    free(names);
}

struct pool {
    const struct manifest *m;
    const char *dir;
    struct reporter *r;
    const ckpt_open_options *open;
    atomic_size_t next;
    pthread_mutex_t lock;
    int rc;
    ckpt_error err;
};

static void *file_worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->m->file_count || atomic_load(&p->r->stop))
            break;
        struct file_check fc = {p->m, p->dir, p->r, p->open, i, NULL, 0};
        fc.tensors = malloc((p->m->tensor_count + 1) * sizeof *fc.tensors);
        ckpt_error err;
        int rc = fc.tensors ? CKPT_OK : ckpt_fail(&err, CKPT_ERR_NOMEM, "out of memory");
        for (size_t t = 0; t < p->m->tensor_count && !rc; t++)
            if (p->m->tensors[t].file && strcmp(p->m->tensors[t].file, p->m->files[i].path) == 0)
                fc.tensors[fc.count++] = t;
        if (!rc) {
            qsort_r(fc.tensors, fc.count, sizeof *fc.tensors, by_offset, (void *)p->m);
            reporter_unit_begin(p->r, i);   /* findings in manifest order, whichever worker checks which file */
            rc = verify_file(&fc, &err);
            reporter_unit_end(p->r, i);
        }
        free(fc.tensors);
        if (rc) {
            pthread_mutex_lock(&p->lock);
            if (!p->rc) {
                p->rc = rc;
                p->err = err;
            }
            pthread_mutex_unlock(&p->lock);
            atomic_store(&p->r->stop, 1);
        }
    }
    return NULL;
}

/* Tensors that name a file the manifest does not list. */
static void check_tensor_files(const struct manifest *m, struct reporter *r)
{
    for (size_t t = 0; t < m->tensor_count; t++) {
        const struct manifest_tensor *mt = &m->tensors[t];
        bool listed = mt->file == NULL;
        for (size_t i = 0; i < m->file_count && !listed; i++)
            listed = strcmp(m->files[i].path, mt->file) == 0;
        if (!listed)
            report_finding(r, (ckpt_finding){.check = CKPT_CHECK_TENSOR, .file = mt->file, .tensor = mt->name},
                           "tensor %s: its file %s is not listed in the manifest", mt->name, mt->file);
    }
}

void ckpt_verify_options_default(ckpt_verify_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

int ckpt_verify(const char *dst, const ckpt_verify_options *opts, ckpt_finding_fn fn, void *payload,
                ckpt_verify_summary *summary, ckpt_error *err)
{
    ckpt_error_clear(err);
    double start = now_seconds();
    ckpt_verify_options taken;
    ckpt_open_options open;
    ckpt_verify_options_default(&taken);
    int rc = options_take(&taken, sizeof taken, opts, "ckpt_verify_options", err);
    if (!rc)
        rc = open_options_take(&open, taken.open, err);
    if (rc)
        return rc;
    taken.open = &open;
    opts = &taken;
    if (bundle_probe(dst) && opts->convert)   /* a bundle holds a source, not a conversion of one */
        return ckpt_fail(err, CKPT_ERR_ARG, "%s: is a bundle: conversion options apply to a converted folder", dst);
    if (bundle_probe(dst))
        return verify_bundle(dst, opts, fn, payload, summary, err);
    struct manifest m;
    rc = manifest_load(&m, dst, err);
    if (rc) {
        manifest_free(&m);
        return rc;
    }
    struct reporter r;
    reporter_init(&r, fn, payload);
    r.progress = opts->progress;
    r.progress_payload = opts->progress_payload;
    bool fits = true;   /* a hostile manifest's sizes may add past 2^64: then no total is told */
    for (size_t i = 0; i < m.file_count; i++)
        fits &= ckpt_add_u64(r.total_bytes, m.files[i].size, &r.total_bytes);
    for (size_t i = 0; opts->against && i < m.tensor_count; i++)
        fits &= ckpt_add_u64(r.total_bytes, m.tensors[i].alias_of ? 0 : m.tensors[i].nbytes, &r.total_bytes);
    if (!fits)
        r.total_bytes = 0;
    struct pool p = {&m, dst, &r, opts->open, 0, PTHREAD_MUTEX_INITIALIZER, CKPT_OK, {0}};
    check_tensor_files(&m, &r);
    check_extra_files(dst, &m, &r);
    check_index(dst, &m, &r);
    reporter_order(&r, m.file_count);
    run_on_threads(worker_count(opts->jobs, m.file_count), file_worker, &p);
    reporter_order_end(&r);
    rc = p.rc;
    if (rc && err)
        *err = p.err;
    if (!rc && opts->against && !atomic_load(&r.stop))
        rc = verify_fidelity(dst, &m, opts, &r, err);
    r.summary.seconds = now_seconds() - start;
    if (summary)
        *summary = r.summary;
    if (!rc && r.cancelled)
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: verification cancelled", dst);
    if (!rc && r.summary.failures)
        rc = ckpt_fail(err, CKPT_ERR_MISMATCH, "%s: %llu of %llu checks failed", dst,
                       (unsigned long long)r.summary.failures, (unsigned long long)r.summary.checks);
    pthread_mutex_destroy(&p.lock);
    reporter_free(&r);
    manifest_free(&m);
    return rc;
}
