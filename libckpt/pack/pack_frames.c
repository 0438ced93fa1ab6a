/*
 * pack_frames.c: frames compressed on worker threads and handed over in
 * order (common/ordered.h); see pack_frames in pack.h.  A worker reads a
 * frame's bytes from its file, checksums them, splits them into byte planes
 * when they are floating-point values, compresses them and appends the
 * trailer.  Memory is the ring of slots, whatever the size of the checkpoint.
 */
#include "pack.h"

#include "libckpt/common/error.h"
#include "libckpt/common/ordered.h"
#include "libckpt/common/workers.h"
#include "libckpt/kernels/byte_planes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_c_literalCompressionMode */
#include <zstd.h>

/*
 * Planes of weights hold values with nothing to match: zstd's fastest
 * setting with its entropy coder forced on codes them best and fastest
 * (measured on bell-curve bf16: 1.51x at level -1000 with literals
 * compressed, 1.47x at level 1, 1.43x at level 3).
 */
#define ENTROPY_LEVEL (-1000)

struct slot {
    uint8_t *bytes;
    uint8_t *packed;
    size_t packed_bytes;
};

struct run {
    const struct pack_plan *p;
    const size_t *frames;
    int level;
    size_t bound;
    pack_sink_fn sink;
    void *sink_ctx;
};

struct worker {
    ZSTD_CCtx *cctx;
    uint8_t *planes;
    int fd;
    size_t fd_file;
    int mode;                 /* 0: none set, 1: entropy only, 2: level */
};

static int set_mode(struct worker *w, bool entropy_only, int level, ckpt_error *err)
{
    int mode = entropy_only ? 1 : 2;
    if (w->mode == mode)
        return CKPT_OK;
    ZSTD_CCtx_reset(w->cctx, ZSTD_reset_parameters);
    size_t r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, entropy_only ? ENTROPY_LEVEL : level);
    /* an older libzstd without the switch codes planes with its default for literals: valid frames, larger */
    if (!ZSTD_isError(r) && entropy_only)
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
    if (ZSTD_isError(r))
        return ckpt_fail(err, CKPT_ERR_ARG, "zstd level %d: %s", level, ZSTD_getErrorName(r));
    w->mode = mode;
    return CKPT_OK;
}

/* Reads the frame's bytes from its file. */
static int read_frame(const struct run *r, struct worker *w, const struct bundle_frame *fr, uint8_t *dst,
                      ckpt_error *err)
{
    size_t file = r->p->ix.segments[fr->segment].file;
    const char *path = r->p->paths[file];
    if (w->fd < 0 || w->fd_file != file) {
        if (w->fd >= 0)
            close(w->fd);
        w->fd = open(path, O_RDONLY | O_CLOEXEC);
        w->fd_file = file;
        if (w->fd < 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: cannot open: %s", path, strerror(errno));
    }
    for (size_t done = 0; done < fr->length;) {
        ssize_t n = pread(w->fd, dst + done, fr->length - done, (off_t)(fr->file_offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ckpt_fail(err, CKPT_ERR_READ, "%s: %s at byte %llu while packing it", path,
                             n < 0 ? strerror(errno) : "file truncated", (unsigned long long)(fr->file_offset + done));
        done += (size_t)n;
    }
    return CKPT_OK;
}

static void *start(void *ctx)
{
    const struct run *r = ctx;
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    *w = (struct worker){ZSTD_createCCtx(), malloc((size_t)r->p->ix.frame_bytes), -1, 0, 0};
    if (!w->cctx || !w->planes) {
        ZSTD_freeCCtx(w->cctx);
        free(w->planes);
        free(w);
        return NULL;
    }
    return w;
}

static void finish(void *ctx, void *worker)
{
    (void)ctx;
    struct worker *w = worker;
    if (w->fd >= 0)
        close(w->fd);
    ZSTD_freeCCtx(w->cctx);
    free(w->planes);
    free(w);
}

/* Fills the slot with frame r->frames[item]. */
static int make(void *ctx, void *worker, size_t item, void *slot, ckpt_error *err)
{
    const struct run *r = ctx;
    struct worker *w = worker;
    struct slot *s = slot;
    const struct bundle_frame *fr = &r->p->ix.frames[r->frames[item]];
    const struct bundle_segment *g = &r->p->ix.segments[fr->segment];
    int rc = read_frame(r, w, fr, s->bytes, err);
    if (!rc)
        rc = set_mode(w, r->p->entropy_only[fr->segment], r->level, err);
    if (rc)
        return rc;
    const uint8_t *in = s->bytes;
    if (g->width) {
        planes_split(s->bytes, w->planes, fr->length / g->width, g->width);
        in = w->planes;
    }
    size_t n = ZSTD_compress2(w->cctx, s->packed, r->bound, in, fr->length);
    if (ZSTD_isError(n))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: zstd: %s", r->p->paths[g->file], ZSTD_getErrorName(n));
    bundle_trailer_encode(s->packed + n, g->file, fr->file_offset, XXH3_64bits(s->bytes, fr->length));
    s->packed_bytes = n + BUNDLE_TRAILER_BYTES;
    return CKPT_OK;
}

static int use(void *ctx, size_t item, void *slot, ckpt_error *err)
{
    const struct run *r = ctx;
    const struct slot *s = slot;
    struct packed_frame f = {r->frames[item], s->bytes, s->packed, s->packed_bytes};
    return r->sink(r->sink_ctx, &f, err);
}

static const struct ordered_ops ops = {start, finish, make, use};

int pack_frames(const struct pack_plan *p, const size_t *frames, size_t count, int level, unsigned jobs,
                pack_sink_fn sink, void *ctx, atomic_int *stop, ckpt_error *err)
{
    unsigned threads = worker_count(jobs, count);
    struct run r = {p, frames, level, ZSTD_compressBound((size_t)p->ix.frame_bytes), sink, ctx};
    size_t n = ORDERED_SLOTS(threads);
    struct slot *slots = calloc(n, sizeof *slots);
    void **ring = calloc(n, sizeof *ring);
    int rc = slots && ring ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory packing");
    for (size_t i = 0; !rc && i < n; i++) {
        ring[i] = &slots[i];
        if (!(slots[i].bytes = malloc((size_t)p->ix.frame_bytes)) ||
            !(slots[i].packed = malloc(r.bound + BUNDLE_TRAILER_BYTES)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory packing");
    }
    if (!rc)
        rc = ordered_run(count, threads, ring, &ops, &r, stop, err);
    for (size_t i = 0; slots && i < n; i++) {
        free(slots[i].bytes);
        free(slots[i].packed);
    }
    free(slots);
    free(ring);
    return rc;
}
