/*
 * unpack.c: ckpt_unpack, the files of a bundle written back, byte for byte.
 *
 * Frames are decompressed and checked on worker threads and written in plan
 * order by the calling thread (bundle_each_frame), which also checksums each
 * segment and file as its bytes go by.  A damaged frame, or a segment or
 * file whose checksum differs, costs that file only: it is removed, named
 * with the tensor whose bytes were lost, and the others are still written.
 * DST is built under a temporary name beside it and renamed into place when
 * every file is written and flushed.
 */
#include "pack.h"

#include "formats/bundle/bundle.h"
#include "libckpt/common/clock.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/io/atomic_file.h"
#include "libckpt/io/outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

struct unpack {
    struct bundle *b;
    const struct bundle_index *ix;
    const ckpt_unpack_options *opts;
    const char *dst;
    ckpt_finding_fn fn;
    void *payload;
    bool one_file;            /* DST is the file a file was packed from */
    struct outdir out;
    struct atomic_file single;
    size_t next_file;         /* files before it are finished */
    int fd;                   /* the file being written, or -1 */
    char *path;               /* ... where */
    bool damaged;             /* ... lost a frame: its remaining frames are skipped */
    XXH3_state_t *file_hash, *segment_hash;
    uint64_t done;
    ckpt_unpack_stats stats;
};

/* Reports file `file` lost, naming the tensor of `segment` (SIZE_MAX: none), and removes what was written. */
static int lose_file(struct unpack *u, size_t file, size_t segment, const char *why)
{
    const struct bundle_file *f = &u->ix->files[file];
    const char *tensor = segment != SIZE_MAX && u->ix->segments[segment].name_count
                             ? u->ix->segments[segment].names[0]
                             : NULL;
    if (u->fd >= 0 && !u->one_file)
        close(u->fd);
    u->fd = -1;
    if (u->path && !u->one_file)
        unlink(u->path);
    u->damaged = true;
    u->stats.damaged++;
    char message[CKPT_ERROR_MESSAGE_MAX + 4200];
    snprintf(message, sizeof message, "%s: not written: %s", f->path, why);
    ckpt_finding finding = {.check = CKPT_CHECK_FILE, .ok = 0, .file = f->path, .tensor = tensor, .message = message};
    return u->fn && u->fn(u->payload, &finding) ? CKPT_ERR_CANCELLED : CKPT_OK;
}

/* Creates folder `path`'s parents inside the temporary output (they are flushed with it). */
static int begin_file(struct unpack *u, size_t file, ckpt_error *err)
{
    const struct bundle_file *f = &u->ix->files[file];
    u->damaged = false;
    XXH3_128bits_reset(u->file_hash);
    free(u->path);
    u->path = NULL;
    if (u->one_file) {
        u->fd = u->single.fd;
        return CKPT_OK;
    }
    if (!(u->path = outdir_path(&u->out, f->path)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    int rc = mkdir_parents(u->path, err);
    if (!rc && (u->fd = open(u->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        rc = ckpt_fail(err, CKPT_ERR_WRITE, "%s/%s: cannot create: %s", u->out.dst, f->path, strerror(errno));
    return rc;
}

/* Checks a finished file's checksum and flushes it, or loses it. */
static int end_file(struct unpack *u, size_t file, ckpt_error *err)
{
    const struct bundle_file *f = &u->ix->files[file];
    if (u->damaged)
        return CKPT_OK;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(u->file_hash));
    if (bundle_hashes_known(u->b) && memcmp(c.digest, f->hash, 16) != 0)
        return lose_file(u, file, SIZE_MAX, "its bytes differ from the XXH3-128 the bundle holds for it");
    u->stats.files++;
    if (u->one_file)
        return CKPT_OK;
    int fd = u->fd;
    u->fd = -1;
    return close_synced(fd, f->path, err);
}

/* Finishes files until `file` is the one being written (empty files have no frames to start them). */
static int reach_file(struct unpack *u, size_t file, ckpt_error *err)
{
    int rc = CKPT_OK;
    while (!rc && u->next_file <= file) {
        size_t f = u->next_file++;
        rc = begin_file(u, f, err);
        if (!rc && f < file)
            rc = end_file(u, f, err);
    }
    return rc;
}

/* Writes one frame's bytes into its file, in order (bundle_each_frame). */
static int use(void *ctx, size_t item, const uint8_t *bytes, const ckpt_error *damage, ckpt_error *err)
{
    struct unpack *u = ctx;
    const struct bundle_frame *fr = &u->ix->frames[item];
    const struct bundle_segment *g = &u->ix->segments[fr->segment];
    size_t file = g->file;
    int rc = reach_file(u, file, err);
    if (rc || u->damaged)
        return rc;
    if (damage)
        return lose_file(u, file, fr->segment, damage->message);
    if (item == g->first_frame)
        XXH3_128bits_reset(u->segment_hash);
    XXH3_128bits_update(u->segment_hash, bytes, fr->length);
    XXH3_128bits_update(u->file_hash, bytes, fr->length);
    for (size_t done = 0; done < fr->length;) {
        ssize_t n = write(u->fd, bytes + done, fr->length - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ckpt_fail(err, CKPT_ERR_WRITE, "%s: %s: write failed: %s", u->dst, u->ix->files[file].path, n < 0 ? strerror(errno) : "no progress");
        done += (size_t)n;
    }
    u->done += fr->length;
    u->stats.bytes += fr->length;
    if (item + 1 == g->first_frame + g->frame_count && bundle_hashes_known(u->b)) {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(u->segment_hash));
        if (memcmp(c.digest, g->hash, 16) != 0)
            return lose_file(u, file, fr->segment, "its bytes differ from the XXH3-128 the bundle holds for them");
    }
    if (item + 1 == u->ix->files[file].first_frame + u->ix->files[file].frame_count)
        rc = end_file(u, file, err);
    if (!rc && u->opts->progress && u->opts->progress(u->opts->progress_payload, u->done, u->ix->data_bytes))
        rc = ckpt_fail(err, CKPT_ERR_CANCELLED, "cancelled");
    return rc;
}

/* Decompresses every frame in order into the files. */
static int write_files(struct unpack *u, ckpt_error *err)
{
    atomic_int stop = 0;
    int rc = bundle_each_frame(u->b, u->opts->jobs, use, u, &stop, err);
    if (!rc)
        rc = reach_file(u, u->ix->file_count - 1, err);   /* trailing empty files */
    if (!rc && !u->ix->files[u->ix->file_count - 1].frame_count)
        rc = end_file(u, u->ix->file_count - 1, err);
    return rc;
}

/*
 * Opens the bundle; one whose table is lost (a copy cut short) is walked
 * frame by frame instead, so that the files before the cut are recovered,
 * unless no frame at all is found that way.
 */
static int open_bundle(const char *path, struct bundle **out, ckpt_error *err)
{
    int rc = bundle_open(path, NULL, out, err);
    if (rc != CKPT_ERR_FORMAT && rc != CKPT_ERR_READ)
        return rc;
    struct bundle *b;
    if (bundle_open_lost_table(path, NULL, &b, NULL) != CKPT_OK)
        return rc;
    const struct bundle_index *ix = bundle_index_of(b);
    if (ix->frame_count && ix->frames[0].volume == BUNDLE_ABSENT) {
        bundle_close(b);
        return rc;
    }
    *out = b;
    return CKPT_OK;
}

void ckpt_unpack_options_default(ckpt_unpack_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
}

int ckpt_unpack(const char *bundle, const char *dst, const ckpt_unpack_options *given, ckpt_finding_fn fn,
                void *payload, ckpt_unpack_stats *stats, ckpt_error *err)
{
    ckpt_error_clear(err);
    if (stats)
        *stats = (ckpt_unpack_stats){0};
    if (!bundle || !dst)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_unpack: NULL argument");
    ckpt_unpack_options o;
    ckpt_unpack_options_default(&o);
    int rc = options_take(&o, sizeof o, given, "ckpt_unpack_options", err);
    if (rc)
        return rc;
    double begun = now_seconds();
    struct unpack u = {0};
    u.opts = &o;
    u.dst = dst;
    u.fn = fn;
    u.payload = payload;
    u.fd = -1;
    u.out.lock_fd = -1;
    u.single.fd = -1;
    rc = open_bundle(bundle, &u.b, err);
    if (!rc) {
        u.ix = bundle_index_of(u.b);
        u.one_file = u.ix->flags & BUNDLE_SOURCE_IS_FILE;
        rc = u.one_file ? mkdir_parents(dst, err) : CKPT_OK;
        if (!rc)
            rc = u.one_file ? (o.force ? atomic_file_create_over(&u.single, dst, err)
                                       : atomic_file_create(&u.single, dst, err))
                            : outdir_begin(&u.out, dst, o.force, err);
    }
    u.file_hash = XXH3_createState();
    u.segment_hash = XXH3_createState();
    if (!rc && (!u.file_hash || !u.segment_hash))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = write_files(&u, err);
    if (u.fd >= 0 && !u.one_file)
        close(u.fd);
    bool written = !rc && u.stats.files > 0;
    if (written)
        rc = u.one_file ? atomic_file_commit(&u.single, err) : outdir_commit(&u.out, err);
    if (!rc && u.stats.damaged)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %llu of %zu files damaged or lost, left out%s%s", bundle,
                       (unsigned long long)u.stats.damaged, u.ix->file_count,
                       u.stats.files ? " (every other file written and checked)" : "",
                       bundle_hashes_known(u.b) ? ""
                                                : "; the table was lost, so files were checked frame by frame, "
                                                  "against each frame's own checksum");
    u.stats.seconds = now_seconds() - begun;
    if (stats)
        *stats = u.stats;
    atomic_file_discard(&u.single);
    if (u.ix && !u.one_file)
        outdir_end(&u.out);
    XXH3_freeState(u.file_hash);
    XXH3_freeState(u.segment_hash);
    free(u.path);
    bundle_close(u.b);
    return rc;
}
