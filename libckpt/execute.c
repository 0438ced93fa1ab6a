/*
 * execute.c: carrying out a plan.
 *
 * Every shard file is created with its final header at once, so workers can
 * write any tensor at its planned offset (pwrite) in any order.  A small
 * pool of threads takes tensors one at a time and streams each through
 * bounded buffers: read a block of lines, cast it, tile it when NZ, write
 * it.  Memory is therefore a few blocks per worker, whatever the checkpoint
 * size.  Meanwhile the calling thread hashes the source files for the
 * manifest.  Only when everything is written and flushed is the folder
 * renamed into place (outdir.c).
 */
#include "plan.h"

#include "checked.h"
#include "error.h"
#include "manifest.h"
#include "outdir.h"
#include "records.h"
#include "safetensors.h"
#include "side_files.h"
#include "source.h"
#include "transform.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUDGET ((uint64_t)32 << 20)  /* buffer bytes per worker */

struct shard_out {
    int fd;
    uint64_t data_start;
    uint64_t size;
};

struct execution {
    struct ckpt_plan *plan;
    const struct ckpt_source *src;
    struct outdir out;
    struct shard_out *shards;
    struct tensor_record *tensors;   /* one per plan item */
    size_t stored;                   /* items [0, stored) have bytes in a shard */
    uint64_t budget;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;            /* guards rc, err, done and the progress callback */
    int rc;
    ckpt_error err;
    uint64_t done;
    ckpt_progress_fn progress;
    void *payload;
};

struct buffers {
    uint8_t *in, *out, *tiles;
    size_t in_cap, out_cap, tiles_cap;
};

static int ensure(uint8_t **buf, size_t *cap, uint64_t need, ckpt_error *err)
{
    if (need <= *cap)
        return CKPT_OK;
    if (need > SIZE_MAX)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "a block of %llu bytes does not fit in memory",
                         (unsigned long long)need);
    free(*buf);
    *cap = 0;
    if (!(*buf = malloc((size_t)need)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory for a %llu-byte block", (unsigned long long)need);
    *cap = (size_t)need;
    return CKPT_OK;
}

static int pwrite_all(int fd, const uint8_t *p, uint64_t len, uint64_t offset, const struct execution *ex,
                      size_t shard, ckpt_error *err)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len > ((size_t)1 << 30) ? (size_t)1 << 30 : (size_t)len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ckpt_fail(err, CKPT_ERR_WRITE, "%s/%s: write failed: %s", ex->plan->dst,
                             ex->plan->shards[shard].name, n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (uint64_t)n;
        offset += (uint64_t)n;
    }
    return CKPT_OK;
}

/* Adds converted source bytes to the progress; false when the run must stop. */
static bool report(struct execution *ex, uint64_t bytes)
{
    pthread_mutex_lock(&ex->lock);
    ex->done += bytes;
    if (ex->progress && ex->progress(ex->payload, ex->done, ex->plan->bytes_in) != 0)
        atomic_store(&ex->plan->cancelled, 1);
    pthread_mutex_unlock(&ex->lock);
    return !atomic_load(&ex->plan->cancelled) && !atomic_load(&ex->failed);
}

/* ---- one tensor ---- */

struct job {
    struct execution *ex;
    const struct plan_item *it;
    const struct tensor_entry *te;
    struct transform tf;
    int fd;
    size_t shard;
    uint64_t base;          /* file offset of the tensor's bytes */
    size_t out_esize;
    struct tensor_record *rec;
};

/* Reads lines and converts them into b->out; returns the converted bytes in *out. */
static int read_converted(struct job *j, struct buffers *b, uint64_t first, uint64_t count, uint64_t row0,
                          uint8_t **out, ckpt_error *err)
{
    uint64_t in_bytes = count * view_line_bytes(&j->te->pub);
    uint64_t out_bytes = count * j->tf.line_elems * j->out_esize;
    int rc = ensure(&b->in, &b->in_cap, in_bytes, err);
    if (!rc)
        rc = view_read_lines(j->ex->src, j->te, first, count, b->in, err);
    if (rc)
        return rc;
    if (j->tf.from == j->tf.to && !j->tf.scales) {
        *out = b->in;
        return CKPT_OK;
    }
    rc = ensure(&b->out, &b->out_cap, out_bytes, err);
    if (!rc)
        rc = transform_lines(&j->tf, b->in, b->out, row0, count, &j->rec->counts, err);
    *out = b->out;
    return rc;
}

static int stream_nd(struct job *j, struct buffers *b, ckpt_error *err)
{
    uint64_t lines = view_line_count(&j->te->pub), in_line = view_line_bytes(&j->te->pub);
    uint64_t out_line = j->tf.line_elems * j->out_esize;
    uint64_t per = j->ex->budget / (in_line + out_line + 1);
    if (per == 0)
        per = 1;
    XXH3_state_t *state = XXH3_createState();
    if (!state)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    XXH3_128bits_reset(state);
    int rc = CKPT_OK;
    for (uint64_t l0 = 0; l0 < lines && !rc; l0 += per) {
        uint64_t k = lines - l0 < per ? lines - l0 : per;
        uint8_t *out;
        rc = read_converted(j, b, l0, k, l0, &out, err);
        if (!rc)
            rc = pwrite_all(j->fd, out, k * out_line, j->base + l0 * out_line, j->ex, j->shard, err);
        if (!rc) {
            XXH3_128bits_update(state, out, (size_t)(k * out_line));
            if (!report(j->ex, k * in_line))
                rc = CKPT_ERR_CANCELLED;
        }
    }
    j->rec->hash = XXH3_128bits_digest(state);
    XXH3_freeState(state);
    return rc;
}

/*
 * NZ in row blocks: a block of R rows (R a multiple of 16) tiles into
 * ceil(N/C0) column chunks of R*C0 elements, each contiguous in the output.
 * With a transposed layout the source rows are output columns, so each
 * matrix is converted whole instead.
 */
static int stream_nz(struct job *j, struct buffers *b, ckpt_error *err)
{
    const uint64_t *nd = j->it->pub.nd_shape;
    uint32_t r = j->it->pub.nd_rank;
    uint64_t m = nd[r - 2], n = nd[r - 1], c0 = plan_nz_c0(j->out_esize);
    uint64_t n1 = (n + c0 - 1) / c0, mp = (m + 15) / 16 * 16;
    uint64_t src_rows = j->te->pub.shape[r - 2];   /* rows of each source matrix */
    uint64_t batches = view_line_count(&j->te->pub) / src_rows;
    uint64_t in_line = view_line_bytes(&j->te->pub), tile_row = n1 * c0 * j->out_esize;
    uint64_t per = j->it->pub.transposed ? src_rows : j->ex->budget / (in_line + 2 * tile_row + 1) / 16 * 16;
    if (per < 16)
        per = 16;
    int rc = CKPT_OK;
    for (uint64_t bt = 0; bt < batches && !rc; bt++) {
        for (uint64_t r0 = 0; r0 < src_rows && !rc; r0 += per) {
            uint64_t k = src_rows - r0 < per ? src_rows - r0 : per;
            uint64_t rp = j->it->pub.transposed ? mp : (k + 15) / 16 * 16;
            uint8_t *rows;
            rc = read_converted(j, b, bt * src_rows + r0, k, r0, &rows, err);
            if (!rc)
                rc = ensure(&b->tiles, &b->tiles_cap, n1 * rp * c0 * j->out_esize, err);
            if (!rc)
                rc = transform_nz(rows, b->tiles, k, j->tf.line_elems, j->tf.to, j->it->pub.transposed, err);
            uint64_t chunk = rp * c0 * j->out_esize;
            for (uint64_t col = 0; col < n1 && !rc; col++)
                rc = pwrite_all(j->fd, b->tiles + col * chunk, chunk,
                                j->base + ((bt * n1 + col) * mp + r0) * c0 * j->out_esize, j->ex, j->shard, err);
            if (!rc && !report(j->ex, k * in_line))
                rc = CKPT_ERR_CANCELLED;
        }
    }
    /* the stored order is not the order written: hash what is on disk */
    if (!rc)
        rc = hash_file_range(j->fd, j->base, j->it->pub.nbytes, j->ex->plan->shards[j->shard].name, &j->rec->hash,
                             err);
    return rc;
}

static int read_scales(struct job *j, float **scales, ckpt_error *err)
{
    const ckpt_tensor *s = ckpt_source_tensor(j->ex->src, j->it->scale_index);
    *scales = malloc(s->nbytes ? s->nbytes : 1);
    if (!*scales)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory reading %s", s->name);
    j->tf.scales = *scales;
    j->tf.scale_cols = s->shape[1];
    j->tf.block_rows = j->ex->plan->fp8_block[0];
    j->tf.block_cols = j->ex->plan->fp8_block[1];
    return ckpt_source_read(j->ex->src, j->it->scale_index, 0, s->shape[0], *scales, s->nbytes, err);
}

static int convert_item(struct execution *ex, size_t i, struct buffers *b, ckpt_error *err)
{
    const struct plan_item *it = &ex->plan->items[i];
    const struct tensor_entry *te = &ex->src->tensors[it->source_index];
    struct job j = {ex, it, te, {0}, ex->shards[it->pub.shard].fd, it->pub.shard, 0,
                    ckpt_dtype_size(it->pub.dtype), &ex->tensors[i]};
    j.base = ex->shards[it->pub.shard].data_start + it->pub.offset;
    j.tf = (struct transform){te->pub.dtype, it->pub.dtype, ex->plan->opts.overflow,
                              te->pub.rank >= 2 ? te->pub.shape[te->pub.rank - 1] : 1, NULL, 0, 0, 0};
    float *scales = NULL;
    int rc = it->scale_index != SIZE_MAX ? read_scales(&j, &scales, err) : CKPT_OK;
    if (!rc)
        rc = it->pub.layout == CKPT_LAYOUT_FRACTAL_NZ ? stream_nz(&j, b, err) : stream_nd(&j, b, err);
    free(scales);
    return rc;
}

static void *worker(void *arg)
{
    struct execution *ex = arg;
    struct buffers b = {0};
    while (!atomic_load(&ex->failed) && !atomic_load(&ex->plan->cancelled)) {
        size_t i = atomic_fetch_add(&ex->next, 1);
        if (i >= ex->stored)
            break;
        ckpt_error err;
        int rc = convert_item(ex, i, &b, &err);
        if (rc && rc != CKPT_ERR_CANCELLED) {
            pthread_mutex_lock(&ex->lock);
            if (!ex->rc) {
                ex->rc = rc;
                ex->err = err;
            }
            pthread_mutex_unlock(&ex->lock);
            atomic_store(&ex->failed, 1);
        }
    }
    free(b.in);
    free(b.out);
    free(b.tiles);
    return NULL;
}

/* ---- shards ---- */

/* The per-shard metadata that makes NZ tensors self-describing without the manifest. */
static int shard_metadata(const struct ckpt_plan *plan, const struct plan_shard *sh, ckpt_kv **out, size_t *count,
                          ckpt_error *err)
{
    ckpt_kv *meta = calloc(sh->item_count + 1, sizeof *meta);
    if (!meta)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    size_t n = 0;
    meta[n++] = (ckpt_kv){"format", "pt"};
    for (size_t i = 0; i < sh->item_count; i++) {
        const ckpt_plan_entry *e = &plan->items[sh->first_item + i].pub;
        if (e->layout != CKPT_LAYOUT_FRACTAL_NZ)
            continue;
        char *key = NULL, *value = NULL;
        if (layout_metadata(e, &key, &value) != 0) {
            for (size_t k = 1; k < n; k++) {
                free((char *)meta[k].key);
                free((char *)meta[k].value);
            }
            free(meta);
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        }
        meta[n++] = (ckpt_kv){key, value};
    }
    *out = meta;
    *count = n;
    return CKPT_OK;
}

static void free_metadata(ckpt_kv *meta, size_t count)
{
    for (size_t k = 1; k < count; k++) {
        free((char *)meta[k].key);
        free((char *)meta[k].value);
    }
    free(meta);
}

static int open_shard(struct execution *ex, size_t s, ckpt_error *err)
{
    const struct plan_shard *sh = &ex->plan->shards[s];
    ckpt_tensor *tensors = calloc(sh->item_count + 1, sizeof *tensors);
    if (!tensors)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sh->item_count; i++) {
        const ckpt_plan_entry *e = &ex->plan->items[sh->first_item + i].pub;
        tensors[i] = (ckpt_tensor){e->name, e->dtype, e->rank, e->shape, e->nbytes, 0, NULL};
    }
    ckpt_kv *meta = NULL;
    size_t meta_count = 0;
    char *header = NULL;
    size_t header_len = 0;
    uint64_t data_bytes = 0;
    int rc = shard_metadata(ex->plan, sh, &meta, &meta_count, err);
    if (!rc)
        rc = safetensors_header_build(sh->name, tensors, sh->item_count, meta, meta_count, &header, &header_len,
                                      &data_bytes, err);
    if (!rc)
        rc = outdir_create(&ex->out, sh->name, &ex->shards[s].fd, err);
    if (!rc) {
        uint8_t len_le[8];
        for (int k = 0; k < 8; k++)
            len_le[k] = (uint8_t)((uint64_t)header_len >> (8 * k));
        ex->shards[s].data_start = 8 + header_len;
        ex->shards[s].size = 8 + header_len + data_bytes;
        rc = pwrite_all(ex->shards[s].fd, len_le, 8, 0, ex, s, err);
        if (!rc)
            rc = pwrite_all(ex->shards[s].fd, (uint8_t *)header, header_len, 8, ex, s, err);
        /* claim the space now: a full disk fails here, before hours of work */
        int fa = rc ? 0 : posix_fallocate(ex->shards[s].fd, 0, (off_t)ex->shards[s].size);
        if (fa && fa != EOPNOTSUPP && fa != EINVAL)
            rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s/%s: cannot reserve %llu bytes: %s", ex->plan->dst, sh->name,
                           (unsigned long long)ex->shards[s].size, strerror(fa));
    }
    free(header);
    free_metadata(meta, meta_count);
    free(tensors);
    return rc;
}

static int close_shards(struct execution *ex, struct file_records *files, ckpt_error *err)
{
    int rc = CKPT_OK;
    for (size_t s = 0; s < ex->plan->shard_count; s++) {
        int fd = ex->shards[s].fd;
        ex->shards[s].fd = -1;
        XXH128_hash_t h = {0, 0};
        const char *name = ex->plan->shards[s].name;
        if (!rc)
            rc = hash_file_range(fd, 0, ex->shards[s].size, name, &h, err);
        if (!rc)
            rc = file_records_add(files, name, ex->shards[s].size, h, err);
        int closed = close_synced(fd, name, err);
        if (!rc)
            rc = closed;
    }
    return rc;
}

/* ---- the whole run ---- */

static unsigned job_count(const struct ckpt_plan *plan, size_t stored)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned jobs = plan->opts.jobs ? plan->opts.jobs : (cores > 0 ? (unsigned)cores : 1);
    if (jobs > stored)
        jobs = stored ? (unsigned)stored : 1;
    return jobs > 256 ? 256 : jobs;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t stored_count(const struct ckpt_plan *plan)
{
    size_t n = 0;
    while (n < plan->item_count && !plan->items[n].pub.alias_of)
        n++;
    return n;
}

/* Runs the workers while this thread hashes the source files. */
static int run_workers(struct execution *ex, struct file_records *source_files, ckpt_error *err)
{
    unsigned jobs = job_count(ex->plan, ex->stored);
    uint64_t total = ex->plan->opts.max_memory ? ex->plan->opts.max_memory : DEFAULT_BUDGET * jobs;
    ex->budget = total / jobs ? total / jobs : 1;
    pthread_t threads[256];
    unsigned started = 0;
    for (; started < jobs; started++)
        if (pthread_create(&threads[started], NULL, worker, ex) != 0)
            break;
    int rc = started ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "cannot start worker threads");
    if (!rc)
        rc = hash_source_files(ex->src, source_files, &ex->failed, err);
    if (rc)
        atomic_store(&ex->failed, 1);
    for (unsigned t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    if (!rc && ex->rc) {
        rc = ex->rc;
        if (err)
            *err = ex->err;
    }
    if (!rc && atomic_load(&ex->plan->cancelled))
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "%s: conversion cancelled; nothing was written", ex->plan->dst);
    return rc;
}

int ckpt_plan_execute(ckpt_plan *plan, ckpt_progress_fn progress, void *payload, ckpt_convert_stats *stats,
                      ckpt_error *err)
{
    ckpt_error_clear(err);
    double start = now_seconds();
    struct execution ex = {.plan = plan, .src = plan->src, .progress = progress, .payload = payload};
    struct file_records source_files = {0}, output_files = {0};
    pthread_mutex_init(&ex.lock, NULL);
    atomic_store(&plan->cancelled, 0);
    ex.stored = stored_count(plan);
    ex.shards = calloc(plan->shard_count, sizeof *ex.shards);
    ex.tensors = calloc(plan->item_count + 1, sizeof *ex.tensors);
    int rc = (!ex.shards || !ex.tensors) ? ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory") : CKPT_OK;
    for (size_t s = 0; s < plan->shard_count && ex.shards; s++)
        ex.shards[s].fd = -1;
    if (!rc)
        rc = outdir_begin(&ex.out, plan->dst, plan->opts.force, err);
    for (size_t s = 0; s < plan->shard_count && !rc; s++)
        rc = open_shard(&ex, s, err);
    if (!rc)
        rc = run_workers(&ex, &source_files, err);
    if (!rc)
        rc = close_shards(&ex, &output_files, err);
    if (!rc)
        rc = write_side_files(&ex.out, plan, &output_files, err);
    if (!rc)
        rc = manifest_write(&ex.out, plan, &source_files, &output_files, ex.tensors, now_seconds() - start, err);
    if (!rc)
        rc = outdir_commit(&ex.out, err);
    for (size_t s = 0; s < plan->shard_count && ex.shards; s++)
        if (ex.shards[s].fd >= 0)
            close(ex.shards[s].fd);
    outdir_end(&ex.out);
    if (!rc && stats) {
        *stats = (ckpt_convert_stats){ex.stored, plan->bytes_in, plan->bytes_out, now_seconds() - start, {0, 0, 0}};
        for (size_t i = 0; i < ex.stored; i++) {
            stats->counts.overflowed += ex.tensors[i].counts.overflowed;
            stats->counts.subnormal += ex.tensors[i].counts.subnormal;
            stats->counts.flushed += ex.tensors[i].counts.flushed;
        }
    }
    file_records_free(&source_files);
    file_records_free(&output_files);
    free(ex.shards);
    free(ex.tensors);
    pthread_mutex_destroy(&ex.lock);
    return rc;
}
