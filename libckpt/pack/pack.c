/*
 * pack.c: ckpt_pack, writing a bundle (docs/bundle.md).
 *
 * The index file is started first with its header and plan; frames follow
 * in it, or go to volumes beside it, each volume a file of its own built
 * under a temporary name and renamed into place when full and flushed.
 * Every file's and segment's XXH3-128 is computed from the bytes as they go
 * by, in order.  The table and footer end the index file, which is renamed
 * into place last: until then no bundle exists under its name.
 */
#include "pack.h"

#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/io/atomic_file.h"
#include "libckpt/io/outdir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

struct writer {
    struct pack_plan *p;
    const char *index_path;
    const ckpt_pack_options *opts;
    struct atomic_file index;
    struct atomic_file *volumes;  /* volumes[v - 1]: flushed under temporary names, named only when all are done */
    bool volume_open;
    uint64_t set_id;
    XXH3_state_t *file_hash, *segment_hash, *volume_hash;
    size_t volume_cap;
    uint64_t done, total, written;
};

char *pack_index_path(const char *bundle, unsigned part, unsigned parts)
{
    size_t n = strlen(bundle) + 40;
    char *out = malloc(n);
    if (out && parts)
        snprintf(out, n, "%s.part-%u-of-%u", bundle, part, parts);
    else if (out)
        snprintf(out, n, "%s", bundle);
    return out;
}

static void canonical(XXH3_state_t *s, uint8_t out[16])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(s));
    memcpy(out, c.digest, 16);
}

static int create_output(struct atomic_file *f, const char *path, bool force, ckpt_error *err)
{
    int rc = mkdir_parents(path, err);   /* as mkdir -p: BUNDLE may name folders yet to be made */
    if (rc)
        return rc;
    return force ? atomic_file_create_over(f, path, err) : atomic_file_create(f, path, err);
}

/* The volume being written. */
static struct atomic_file *current(struct writer *w)
{
    return &w->volumes[w->p->ix.volume_count - 2];
}

/* Flushes the current volume and records its size and checksum; it keeps its temporary name. */
static int close_volume(struct writer *w, ckpt_error *err)
{
    if (!w->volume_open)
        return CKPT_OK;
    struct bundle_volume *v = &w->p->ix.volumes[w->p->ix.volume_count - 1];
    v->size = current(w)->written;
    canonical(w->volume_hash, v->hash);
    w->volume_open = false;
    w->written += v->size;
    return atomic_file_flush(current(w), err);
}

/* Starts the next volume, INDEX.NNN (its name relative to the index file's folder). */
static int open_volume(struct writer *w, ckpt_error *err)
{
    struct bundle_index *ix = &w->p->ix;
    if (ix->volume_count >= BUNDLE_MAX_VOLUMES)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more than %d volumes", w->index_path, BUNDLE_MAX_VOLUMES - 1);
    if (ix->volume_count == w->volume_cap) {
        size_t cap = 2 * w->volume_cap;
        struct bundle_volume *grown = reallocarray(ix->volumes, cap, sizeof *grown);
        struct atomic_file *files = grown ? reallocarray(w->volumes, cap, sizeof *files) : NULL;
        if (grown)
            ix->volumes = grown;
        if (files)
            w->volumes = files;
        if (!files)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
        w->volume_cap = cap;
    }
    size_t number = ix->volume_count;
    char path[4200];
    snprintf(path, sizeof path, "%s.%03zu", w->index_path, number);
    const char *slash = strrchr(path, '/');
    struct bundle_volume *v = &ix->volumes[number];
    memset(v, 0, sizeof *v);
    if (!(v->name = strdup(slash ? slash + 1 : path)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    ix->volume_count++;
    int rc = create_output(current(w), path, w->opts->force, err);
    if (rc)
        return rc;
    w->volume_open = true;
    XXH3_128bits_reset(w->volume_hash);
    uint8_t head[BUNDLE_HEADER_BYTES];
    struct bundle_header h = {BUNDLE_VERSION, BUNDLE_KIND_VOLUME, w->set_id, w->opts->part, w->opts->parts,
                              (uint32_t)number, 0};
    bundle_header_encode(head, &h);
    XXH3_128bits_update(w->volume_hash, head, sizeof head);
    return atomic_file_write(current(w), head, sizeof head, err);
}

/* Hashes a frame's bytes into its file's and segment's checksums, finishing them at their last frame. */
static void hash_frame(struct writer *w, const struct packed_frame *f)
{
    struct bundle_index *ix = &w->p->ix;
    const struct bundle_frame *fr = &ix->frames[f->index];
    struct bundle_segment *g = &ix->segments[fr->segment];
    struct bundle_file *file = &ix->files[g->file];
    if (f->index == file->first_frame)
        XXH3_128bits_reset(w->file_hash);
    if (f->index == g->first_frame)
        XXH3_128bits_reset(w->segment_hash);
    XXH3_128bits_update(w->file_hash, f->bytes, fr->length);
    XXH3_128bits_update(w->segment_hash, f->bytes, fr->length);
    if (f->index + 1 == g->first_frame + g->frame_count)
        canonical(w->segment_hash, g->hash);
    if (f->index + 1 == file->first_frame + file->frame_count)
        canonical(w->file_hash, file->hash);
}

static int place_frame(void *ctx, const struct packed_frame *f, ckpt_error *err)
{
    struct writer *w = ctx;
    struct bundle_frame *fr = &w->p->ix.frames[f->index];
    hash_frame(w, f);
    int rc = CKPT_OK;
    if (!w->opts->volume_bytes && !w->opts->parts) {
        fr->volume = 0;
        fr->offset = w->index.written;
        rc = atomic_file_write(&w->index, f->packed, f->packed_bytes, err);
    } else {
        bool full = w->volume_open && current(w)->written > BUNDLE_HEADER_BYTES && w->opts->volume_bytes &&
                    current(w)->written + f->packed_bytes > w->opts->volume_bytes;
        if (full)
            rc = close_volume(w, err);
        if (!rc && !w->volume_open)
            rc = open_volume(w, err);
        fr->volume = (uint32_t)(w->p->ix.volume_count - 1);
        fr->offset = rc ? 0 : current(w)->written;
        XXH3_128bits_update(w->volume_hash, f->packed, f->packed_bytes);
        if (!rc)
            rc = atomic_file_write(current(w), f->packed, f->packed_bytes, err);
    }
    fr->csize = (uint32_t)f->packed_bytes;
    w->done += fr->length;
    if (!rc && w->opts->progress && w->opts->progress(w->opts->progress_payload, w->done, w->total))
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "cancelled");
    return rc;
}

/* Ends the index file: the table (every frame placed by now) and the footer. */
static int finish_index(struct writer *w, ckpt_error *err)
{
    struct bundle_bytes table = {0};
    uint64_t table_offset = w->index.written;
    int rc = bundle_table_encode(&w->p->ix, &table, err);
    uint8_t foot[BUNDLE_FOOTER_BYTES];
    if (!rc) {
        bundle_footer_encode(foot, table_offset, table.len, XXH3_64bits(table.data, table.len));
        rc = atomic_file_write(&w->index, table.data, table.len, err);
    }
    if (!rc)
        rc = atomic_file_write(&w->index, foot, sizeof foot, err);
    bundle_bytes_free(&table);
    w->written += w->index.written;
    if (!rc)
        rc = atomic_file_flush(&w->index, err);
    /* every file is complete and flushed: the volumes get their names, then the index file, which makes the bundle */
    for (size_t v = 0; !rc && v + 1 < w->p->ix.volume_count; v++)
        rc = atomic_file_commit(&w->volumes[v], err);
    return rc ? rc : atomic_file_commit(&w->index, err);
}

static int start_index(struct writer *w, ckpt_error *err)
{
    int rc = create_output(&w->index, w->index_path, w->opts->force, err);
    if (rc)
        return rc;
    uint8_t head[BUNDLE_HEADER_BYTES];
    struct bundle_header h = {BUNDLE_VERSION, w->opts->parts ? BUNDLE_KIND_PART : BUNDLE_KIND_BUNDLE, w->set_id,
                              w->opts->part, w->opts->parts, 0, w->p->plan_bytes};
    bundle_header_encode(head, &h);
    rc = atomic_file_write(&w->index, head, sizeof head, err);
    return rc ? rc : atomic_file_write(&w->index, w->p->plan, w->p->plan_bytes, err);
}

/* The frames this process packs, in plan order: all, or those of its part's files. */
static int my_frames(const struct pack_plan *p, const ckpt_pack_options *o, size_t **out, size_t *count,
                     uint64_t *bytes, uint64_t *files, ckpt_error *err)
{
    const struct bundle_index *ix = &p->ix;
    unsigned *part = o->parts ? calloc(ix->file_count, sizeof *part) : NULL;
    *out = malloc((ix->frame_count ? ix->frame_count : 1) * sizeof **out);
    if (!*out || (o->parts && !part)) {
        free(part);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    }
    if (part && bundle_assign_parts(ix, o->parts, part) != CKPT_OK) {
        free(part);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    }
    *count = 0;
    *bytes = 0;
    *files = 0;
    for (size_t i = 0; i < ix->file_count; i++) {
        const struct bundle_file *f = &ix->files[i];
        if (part && part[i] + 1 != o->part)
            continue;
        for (size_t k = f->first_frame; k < f->first_frame + f->frame_count; k++)
            (*out)[(*count)++] = k;
        *bytes += f->size;
        (*files)++;
    }
    free(part);
    return CKPT_OK;
}

/* The bundle may not be written inside the folder it packs: a second pack would hold the first. */
static int check_outside(const char *src, const char *bundle, ckpt_error *err)
{
    char *dir = strdup(bundle), *slash = dir ? strrchr(dir, '/') : NULL;
    if (!dir)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (slash)
        *slash = '\0';
    char *real_src = realpath(src, NULL), *real_dir = realpath(slash ? (*dir ? dir : "/") : ".", NULL);
    /* folders yet to be made (as mkdir -p): the nearest one that exists says where they will be */
    while (!real_dir && errno == ENOENT && slash && (slash = strrchr(dir, '/')) != NULL) {
        *slash = '\0';
        real_dir = realpath(*dir ? dir : "/", NULL);
    }
    if (!real_dir && errno == ENOENT && !slash)
        real_dir = realpath(".", NULL);
    free(dir);
    int rc = CKPT_OK;
    if (real_src && real_dir) {
        size_t n = strlen(real_src);
        if (strncmp(real_dir, real_src, n) == 0 && (real_dir[n] == '\0' || real_dir[n] == '/'))
            rc = ckpt_fail(err, CKPT_ERR_ARG, "%s: the bundle would lie inside %s, which it packs", bundle, src);
    } else if (!real_dir) {
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s: its folder does not exist", bundle);
    }
    free(real_src);
    free(real_dir);
    return rc;
}

void ckpt_pack_options_default(ckpt_pack_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->frame_bytes = BUNDLE_FRAME_DEFAULT;
    opts->level = 1;
}

/* The caller's options, read only as far as its `size` says; the rest stay at their defaults. */
static int take_options(const ckpt_pack_options *given, ckpt_pack_options *o, ckpt_error *err)
{
    ckpt_pack_options_default(o);
    int rc = options_take(o, sizeof *o, given, "ckpt_pack_options", err);
    if (rc)
        return rc;
    if (o->frame_bytes < BUNDLE_FRAME_MIN || o->frame_bytes > BUNDLE_FRAME_MAX || o->frame_bytes % 8)
        return ckpt_fail(err, CKPT_ERR_ARG, "frame size %llu: must be 64 KiB to 16 MiB, a multiple of 8",
                         (unsigned long long)o->frame_bytes);
    if (o->level < 1 || o->level > ZSTD_maxCLevel())
        return ckpt_fail(err, CKPT_ERR_ARG, "zstd level %d: must be 1 to %d", o->level, ZSTD_maxCLevel());
    if (o->volume_bytes && o->volume_bytes < 2 * BUNDLE_HEADER_BYTES + o->frame_bytes)
        return ckpt_fail(err, CKPT_ERR_ARG, "volume size %llu: must hold at least one frame (%llu bytes)",
                         (unsigned long long)o->volume_bytes, (unsigned long long)(2 * BUNDLE_HEADER_BYTES + o->frame_bytes));
    if (o->parts > 65536 || (o->parts && (o->part < 1 || o->part > o->parts)) || (!o->parts && o->part))
        return ckpt_fail(err, CKPT_ERR_ARG, "part %u of %u: K must be 1 to N", o->part, o->parts);
    return CKPT_OK;
}

int ckpt_pack(const char *src, const char *bundle, const ckpt_pack_options *given, ckpt_pack_stats *stats,
              ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!src || !bundle)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_pack: NULL argument");
    double start = now_seconds();
    ckpt_pack_options o;
    int rc = take_options(given, &o, err);
    struct writer w = {0};
    w.opts = &o;
    w.index.fd = -1;
    struct pack_plan p = {0};
    size_t *frames = NULL, count = 0;
    uint64_t files = 0;
    struct stat st;
    if (!rc && !(w.index_path = pack_index_path(bundle, o.part, o.parts)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc && !o.force && lstat(w.index_path, &st) == 0)
        rc = ckpt_fail(err, CKPT_ERR_EXISTS, "%s: already exists", w.index_path);
    if (!rc)
        rc = check_outside(src, bundle, err);
    if (!rc)
        rc = pack_plan_build(&p, src, o.frame_bytes, o.open, err);
    w.p = &p;
    if (!rc)
        rc = my_frames(&p, &o, &frames, &count, &w.total, &files, err);
    w.file_hash = XXH3_createState();
    w.segment_hash = XXH3_createState();
    w.volume_hash = XXH3_createState();
    w.volume_cap = 16;
    if (!rc && (!w.file_hash || !w.segment_hash || !w.volume_hash ||
                !(p.ix.volumes = calloc(w.volume_cap, sizeof *p.ix.volumes)) ||
                !(w.volumes = calloc(w.volume_cap, sizeof *w.volumes))))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc) {
        p.ix.volume_count = 1;
        w.set_id = XXH3_64bits(p.plan, p.plan_bytes);
        for (size_t i = 0; i < p.ix.file_count; i++)
            if (!p.ix.files[i].frame_count) {   /* an empty file: the checksum of no bytes */
                XXH3_128bits_reset(w.file_hash);
                canonical(w.file_hash, p.ix.files[i].hash);
            }
        rc = start_index(&w, err);
    }
    atomic_int stop = 0;
    if (!rc)
        rc = pack_frames(&p, frames, count, o.level, o.jobs, place_frame, &w, &stop, err);
    if (!rc)
        rc = close_volume(&w, err);
    if (!rc)
        rc = finish_index(&w, err);
    if (!rc && stats) {
        *stats = (ckpt_pack_stats){0};
        for (size_t i = 0; i < count; i++)
            if (p.ix.segments[p.ix.frames[frames[i]].segment].kind == SEGMENT_TENSOR)
                stats->tensor_bytes += p.ix.frames[frames[i]].length;
        stats->files = files;
        stats->bytes_in = w.total;
        stats->bytes_out = w.written;
        stats->volumes = p.ix.volume_count - 1;
        stats->seconds = now_seconds() - start;
    }
    for (size_t v = 0; w.volumes && v + 1 < p.ix.volume_count; v++)
        atomic_file_discard(&w.volumes[v]);   /* after a failure, removes what is still under a temporary name */
    free(w.volumes);
    atomic_file_discard(&w.index);
    XXH3_freeState(w.file_hash);
    XXH3_freeState(w.segment_hash);
    XXH3_freeState(w.volume_hash);
    free((char *)w.index_path);
    free(frames);
    pack_plan_free(&p);
    return rc;
}
