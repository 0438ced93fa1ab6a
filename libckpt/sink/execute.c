/*
 * execute.c: carrying out a plan.
 *
 * Every shard file is created with its final header at once, so workers can
 * write any tensor at its planned offset (pwrite) in any order.  A small
 * pool of threads takes tensors one at a time and streams each through
 * bounded buffers (stream.c) into its shard.  Memory is therefore a few
 * blocks per worker, whatever the checkpoint size.  Meanwhile the calling thread hashes the source files for the
 * manifest.  Only when everything is written and flushed is the folder
 * renamed into place (outdir.c).
 */
#include "libckpt/plan/plan.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/io/outdir.h"
#include "libckpt/manifest/manifest.h"
#include "parts.h"
#include "formats/safetensors/safetensors.h"
#include "libckpt/manifest/records.h"
#include "shard_header.h"
#include "shard_hash.h"
#include "side_files.h"
#include "libckpt/catalog/source.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUDGET ((uint64_t)16 << 20)  /* buffer bytes per worker */
#define WRITEBACK_PIECE ((uint64_t)1 << 20)  /* pieces at least this large are sent to disk at once */
#define NZ_ROOM ((uint64_t)36 << 20)         /* besides the largest NZ matrix: row blocks, in all */

struct shard_out {
    int fd;
    uint64_t data_start;
    uint64_t size;
    struct shard_hash hash;   /* the file's checksum, from the pieces as they are written */
};

struct execution {
    struct ckpt_plan *plan;
    const struct ckpt_source *src;
    struct outdir out;
    struct shard_out *shards;
    struct tensor_record *tensors;   /* one per plan item */
    struct part_map parts;           /* with --part: the shards and source files this process does */
    size_t stored;                   /* items [0, stored) have bytes in a shard */
    uint64_t budget;
    atomic_size_t next;              /* the next position in `order` */
    size_t *order;                   /* items [0, stored), taken in this order */
    atomic_int failed;
    pthread_mutex_t lock;            /* guards rc, err, done and the progress callback */
    int rc;
    ckpt_error err;
    uint64_t done, total;            /* source bytes converted, and to convert (this part's) */
    ckpt_progress_fn progress;
    void *payload;
};

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

/* Writes bytes of shard s at a file offset, and hands them to the shard's checksum. */
static int shard_write(struct execution *ex, size_t s, const uint8_t *p, uint64_t len, uint64_t offset,
                       ckpt_error *err)
{
    struct shard_out *sh = &ex->shards[s];
    int rc = pwrite_all(sh->fd, p, len, offset, ex, s, err);
#ifdef SYNC_FILE_RANGE_WRITE
    /*
     * Start writing a large piece to disk now, without waiting: the disk then
     * works while the conversion goes on, and the fsync at the end finds
     * little left to write, instead of all of it at once.  Only a hint: the
     * fsync still decides durability, so a failure here is ignored.
     */
    if (!rc && len >= WRITEBACK_PIECE)
        (void)sync_file_range(sh->fd, (off_t)offset, (off_t)len, SYNC_FILE_RANGE_WRITE);
#endif
    return rc ? rc : shard_hash_written(&sh->hash, sh->fd, p, len, offset, ex->plan->shards[s].name, err);
}

/* Adds converted source bytes to the progress; false when the run must stop. */
static bool report(struct execution *ex, uint64_t bytes)
{
    pthread_mutex_lock(&ex->lock);
    ex->done += bytes;
    if (ex->progress && ex->progress(ex->payload, ex->done, ex->total) != 0)
        atomic_store(&ex->plan->cancelled, 1);
    pthread_mutex_unlock(&ex->lock);
    return !atomic_load(&ex->plan->cancelled) && !atomic_load(&ex->failed);
}

/* ---- one tensor: stream it into its shard ---- */

struct write_sink {
    struct stream_sink base;
    struct execution *ex;
    int fd;
    size_t shard;
    uint64_t tensor_base;   /* file offset of the tensor's bytes */
    XXH3_state_t *hash;     /* pieces arriving in order are hashed on the way */
    uint64_t hashed;        /* bytes hashed so far: where the next piece must start */
    bool out_of_order;      /* one did not: the tensor is hashed from the file instead */
    float *row_scales;      /* a quantized weight's scales, gathered for its scale tensor */
};

static int write_put(struct stream_sink *sink, const uint8_t *data, uint64_t len, uint64_t offset, ckpt_error *err)
{
    struct write_sink *w = (struct write_sink *)sink;
    int rc = shard_write(w->ex, w->shard, data, len, w->tensor_base + offset, err);
    if (!rc && !w->out_of_order && offset == w->hashed) {
        XXH3_128bits_update(w->hash, data, (size_t)len);
        w->hashed += len;
    } else {
        w->out_of_order = true;
    }
    return rc;
}

static bool write_progress(struct stream_sink *sink, uint64_t bytes)
{
    return report(((struct write_sink *)sink)->ex, bytes);
}

static void write_scales(struct stream_sink *sink, const float *scales, uint64_t first, uint64_t count)
{
    memcpy(((struct write_sink *)sink)->row_scales + first, scales, count * sizeof *scales);
}

/*
 * A quantized linear's scale or offset that its weight's stream writes
 * (write_params): the weight's index, or SIZE_MAX when it is converted on its
 * own (its weight is another part's).  The plan keeps the three consecutive.
 */
static size_t written_by(const struct execution *ex, size_t i)
{
    const struct plan_item *it = &ex->plan->items[i];
    size_t back = it->pub.quant_role == CKPT_QUANT_ROLE_SCALE    ? 1
                  : it->pub.quant_role == CKPT_QUANT_ROLE_OFFSET ? 2
                                                                 : 0;
    if (!back || i < back)
        return SIZE_MAX;
    const struct plan_item *w = &ex->plan->items[i - back];
    return w->pub.quant_role == CKPT_QUANT_ROLE_WEIGHT && w->source_index == it->source_index &&
                   part_has_shard(&ex->parts, w->pub.shard)
               ? i - back
               : SIZE_MAX;
}

/*
 * The scale and offset of the quantized weight i, from the scales its
 * stream computed: one read of the weight instead of two.
 */
static int write_params(struct execution *ex, size_t i, const float *scales, ckpt_error *err)
{
    int rc = CKPT_OK;
    for (size_t k = i + 1; k <= i + 2 && k < ex->stored && !rc; k++) {
        const struct plan_item *it = &ex->plan->items[k];
        if (written_by(ex, k) != i || !part_has_shard(&ex->parts, it->pub.shard))
            continue;
        bool scale = it->pub.quant_role == CKPT_QUANT_ROLE_SCALE;
        uint8_t *bytes = scale ? (uint8_t *)scales : calloc(1, it->pub.nbytes + 1);   /* an offset: zeros */
        if (!bytes)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory writing %s", it->pub.name);
        rc = shard_write(ex, it->pub.shard, bytes, it->pub.nbytes, ex->shards[it->pub.shard].data_start + it->pub.offset,
                         err);
        ex->tensors[k].hash = XXH3_128bits(bytes, (size_t)it->pub.nbytes);
        if (!scale)
            free(bytes);
        if (!rc && !report(ex, it->in_bytes))
            rc = CKPT_ERR_CANCELLED;
    }
    return rc;
}

static int convert_item(struct execution *ex, size_t i, struct stream_buffers *b, ckpt_error *err)
{
    const struct plan_item *it = &ex->plan->items[i];
    struct tensor_record *rec = &ex->tensors[i];
    struct write_sink sink = {{write_put, NULL, write_progress, NULL}, ex, ex->shards[it->pub.shard].fd,
                              it->pub.shard, ex->shards[it->pub.shard].data_start + it->pub.offset, NULL, 0, false,
                              NULL};
    if (!(sink.hash = XXH3_createState()))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    XXH3_128bits_reset(sink.hash);
    if (it->pub.quant_role == CKPT_QUANT_ROLE_WEIGHT) {   /* its rows' scales, for its scale tensor */
        sink.base.scales = write_scales;
        uint64_t rows = it->pub.rows.groups ? it->pub.rows.groups * it->pub.rows.count
                                            : ckpt_source_tensor(ex->src, it->source_index)->shape[0];
        sink.row_scales = malloc(rows * sizeof *sink.row_scales + 1);
        if (!sink.row_scales) {
            XXH3_freeState(sink.hash);
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        }
    }
    int rc = stream_tensor(ex->plan, it, ex->budget, b, &sink.base, &rec->counts, err);
    if (!rc && !sink.out_of_order && sink.hashed == it->pub.nbytes)
        rec->hash = XXH3_128bits_digest(sink.hash);
    else if (!rc) /* pieces written out of order (or not all of them): hash what is on disk */
        rc = hash_file_range(sink.fd, sink.tensor_base, it->pub.nbytes, ex->plan->shards[it->pub.shard].name,
                             &rec->hash, err);
    if (!rc && sink.row_scales)
        rc = write_params(ex, i, sink.row_scales, err);
    XXH3_freeState(sink.hash);
    free(sink.row_scales);
    return rc;
}

static void *worker(void *arg)
{
    struct execution *ex = arg;
    struct stream_buffers b = {0};
    while (!atomic_load(&ex->failed) && !atomic_load(&ex->plan->cancelled)) {
        size_t at = atomic_fetch_add(&ex->next, 1);
        if (at >= ex->stored)
            break;
        size_t i = ex->order[at];
        if (!part_has_shard(&ex->parts, ex->plan->items[i].pub.shard) || written_by(ex, i) != SIZE_MAX)
            continue;
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
    stream_buffers_free(&b);
    return NULL;
}

/* ---- shards ---- */

static int open_shard(struct execution *ex, size_t s, ckpt_error *err)
{
    const struct plan_shard *sh = &ex->plan->shards[s];
    char *header = NULL;
    size_t header_len = 0;
    uint64_t data_bytes = 0;
    int rc = shard_header_build(ex->plan, s, &header, &header_len, &data_bytes, err);
    if (!rc)
        rc = outdir_create(&ex->out, sh->name, &ex->shards[s].fd, err);
    if (!rc) {
        uint8_t len_le[8];
        for (int k = 0; k < 8; k++)
            len_le[k] = (uint8_t)((uint64_t)header_len >> (8 * k));
        ex->shards[s].data_start = 8 + header_len;
        ex->shards[s].size = 8 + header_len + data_bytes;
        rc = shard_hash_init(&ex->shards[s].hash, err);
        if (!rc)
            rc = shard_write(ex, s, len_le, 8, 0, err);
        if (!rc)
            rc = shard_write(ex, s, (uint8_t *)header, header_len, 8, err);
        /* claim the space now: a full disk fails here, before hours of work */
        int fa = rc ? 0 : posix_fallocate(ex->shards[s].fd, 0, (off_t)ex->shards[s].size);
        if (fa && fa != EOPNOTSUPP && fa != EINVAL)
            rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s/%s: cannot reserve %llu bytes: %s", ex->plan->dst, sh->name,
                           (unsigned long long)ex->shards[s].size, strerror(fa));
    }
    free(header);
    return rc;
}

static int close_shards(struct execution *ex, struct file_records *files, ckpt_error *err)
{
    int rc = CKPT_OK;
    for (size_t s = 0; s < ex->plan->shard_count; s++) {
        if (!part_has_shard(&ex->parts, s))
            continue;
        int fd = ex->shards[s].fd;
        ex->shards[s].fd = -1;
        XXH128_hash_t h = {0, 0};
        const char *name = ex->plan->shards[s].name;
        if (!rc)
            rc = shard_hash_finish(&ex->shards[s].hash, fd, ex->shards[s].size, name, &h, err);
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

static size_t stored_count(const struct ckpt_plan *plan)
{
    size_t n = 0;
    while (n < plan->item_count && !plan->items[n].pub.alias_of)
        n++;
    return n;
}

/* The stored bytes of the largest matrix tiled NZ from row blocks (stream.c builds it whole when it fits). */
static uint64_t largest_nz_matrix(const struct ckpt_plan *plan, size_t stored)
{
    uint64_t largest = 0;
    for (size_t i = 0; i < stored; i++) {
        const ckpt_plan_entry *e = &plan->items[i].pub;
        if (e->layout != CKPT_LAYOUT_FRACTAL_NZ || e->transposed || e->nd_rank < 2 || !e->nz_c0)
            continue;
        uint64_t m = e->nd_shape[e->nd_rank - 2], n = e->nd_shape[e->nd_rank - 1], bytes;
        uint64_t dims[3] = {(m + 15) / 16 * 16, (n + e->nz_c0 - 1) / e->nz_c0 * e->nz_c0, ckpt_dtype_size(e->dtype)};
        if (ckpt_product_u64(dims, 3, &bytes) && bytes > largest)
            largest = bytes;
    }
    return largest;
}

/*
 * The order workers take items in: the shards' items in turn, the first of
 * each shard, then the second of each, and so on.  With as many shards as
 * workers, each shard is then written front to back by one worker at a time,
 * so its checksum is taken from the pieces as they go (shard_hash.h) rather
 * than read back; within one shard, items stay in plan order.
 */
static size_t *take_order(const struct ckpt_plan *plan, size_t stored)
{
    size_t *order = malloc((stored + 1) * sizeof *order), *live = malloc((plan->shard_count + 1) * sizeof *live);
    bool *taken = calloc(stored + 1, sizeof *taken);
    if (!order || !live || !taken) {
        free(order);
        free(live);
        free(taken);
        return NULL;
    }
    size_t n = 0, lives = 0;
    for (size_t s = 0; s < plan->shard_count; s++)
        live[lives++] = s;
    for (size_t round = 0; lives; round++) {   /* shards drop out as they run out: O(items + shards) */
        size_t kept = 0;
        for (size_t k = 0; k < lives; k++) {
            const struct plan_shard *sh = &plan->shards[live[k]];
            size_t i = sh->first_item + round;
            if (round >= sh->item_count || i >= stored)
                continue;
            if (!taken[i]) {
                taken[i] = true;
                order[n++] = i;
            }
            live[kept++] = live[k];
        }
        lives = kept;
    }
    for (size_t i = 0; i < stored; i++)   /* items in no shard's range, if a plan had any: plan order */
        if (!taken[i])
            order[n++] = i;
    free(live);
    free(taken);
    return order;
}

/*
 * Runs the workers while this thread hashes the source files.  Each worker
 * gets an equal share of the memory: 16 MiB by default, or, when more, the
 * share of the largest NZ matrix plus NZ_ROOM, so that a worker can build an
 * NZ matrix whole and write it in one piece while peak memory stays within
 * the largest tensor and a few dozen MiB (two workers each holding one
 * 32 MiB matrix being the common case of this machine).
 */
static int run_workers(struct execution *ex, struct file_records *source_files, ckpt_error *err)
{
    unsigned jobs = job_count(ex->plan, ex->stored);
    if (!(ex->order = take_order(ex->plan, ex->stored)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    uint64_t total = DEFAULT_BUDGET * jobs, nz = largest_nz_matrix(ex->plan, ex->stored);
    if (nz && nz <= UINT64_MAX - NZ_ROOM && nz + NZ_ROOM > total)
        total = nz + NZ_ROOM;
    if (ex->plan->opts.max_memory)
        total = ex->plan->opts.max_memory;
    ex->budget = total / jobs ? total / jobs : 1;
    pthread_t threads[256];
    unsigned started = 0;
    for (; started < jobs; started++)
        if (pthread_create(&threads[started], NULL, worker, ex) != 0)
            break;
    int rc = started ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "cannot start worker threads");
    if (!rc)
        rc = hash_source_files(ex->src, ex->parts.file_mine, source_files, &ex->failed, err);
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

/* Folder, shards and the record of the whole run, or (--part) of one part. */
static int execute(struct execution *ex, struct file_records *source_files, struct file_records *output_files,
                   double start, ckpt_error *err)
{
    const struct ckpt_plan *plan = ex->plan;
    int rc = plan->opts.parts ? part_map_build(plan, plan->opts.part, plan->opts.parts, &ex->parts, err)
                              : CKPT_OK;
    for (size_t i = 0; i < ex->stored && !rc && plan->opts.parts; i++)
        ex->total -= part_has_shard(&ex->parts, plan->items[i].pub.shard) ? 0 : plan->items[i].in_bytes;
    if (!rc)
        rc = outdir_check_spares(plan->dst, ckpt_source_path(plan->src), err);
    if (!rc)
        rc = plan->opts.parts ? part_begin(plan, &ex->out, err) : outdir_begin(&ex->out, plan->dst, plan->opts.force, err);
    for (size_t s = 0; s < plan->shard_count && !rc; s++)
        if (part_has_shard(&ex->parts, s))
            rc = open_shard(ex, s, err);
    if (!rc)
        rc = run_workers(ex, source_files, err);
    if (!rc)
        rc = close_shards(ex, output_files, err);
    if (!rc && plan->opts.parts)
        rc = part_record_write(&ex->out, plan, &ex->parts, source_files, output_files, ex->tensors, err);
    if (!rc && !plan->opts.parts)
        rc = write_side_files(&ex->out, plan, output_files, err);
    if (!rc && !plan->opts.parts)
        rc = manifest_write(&ex->out, plan, source_files, output_files, ex->tensors, now_seconds() - start, err);
    if (!rc)
        rc = outdir_commit(&ex->out, err);
    return rc;
}

int ckpt_plan_execute(ckpt_plan *plan, ckpt_progress_fn progress, void *payload, ckpt_convert_stats *stats,
                      ckpt_error *err)
{
    ckpt_error_clear(err);
    double start = now_seconds();
    struct execution ex = {.plan = plan, .src = plan->src, .out = {.lock_fd = -1}, .progress = progress,
                           .payload = payload, .total = plan->bytes_in};
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
        rc = execute(&ex, &source_files, &output_files, start, err);
    uint64_t part_in = 0, part_out = 0;   /* the bytes of the tensors this process converted */
    for (size_t s = 0; s < plan->shard_count && ex.shards; s++) {
        if (ex.shards[s].fd >= 0)
            close(ex.shards[s].fd);
        shard_hash_free(&ex.shards[s].hash);
    }
    outdir_end(&ex.out);
    if (!rc && stats) {
        *stats = (ckpt_convert_stats){0, plan->bytes_in, plan->bytes_out, now_seconds() - start, {0, 0, 0}};
        for (size_t i = 0; i < ex.stored; i++) {
            if (!part_has_shard(&ex.parts, plan->items[i].pub.shard))
                continue;
            stats->tensors++;
            part_in += plan->items[i].in_bytes;
            part_out += plan->items[i].pub.nbytes;
            stats->counts.overflowed += ex.tensors[i].counts.overflowed;
            stats->counts.subnormal += ex.tensors[i].counts.subnormal;
            stats->counts.flushed += ex.tensors[i].counts.flushed;
        }
        if (plan->opts.parts) {
            stats->bytes_in = part_in;
            stats->bytes_out = part_out;
        }
    }
    part_map_free(&ex.parts);
    file_records_free(&source_files);
    file_records_free(&output_files);
    free(ex.shards);
    free(ex.tensors);
    free(ex.order);
    pthread_mutex_destroy(&ex.lock);
    return rc;
}
