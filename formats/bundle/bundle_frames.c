/*
 * bundle_frames.c: every frame of a bundle decompressed on worker threads and
 * handed over in order (libckpt/common/ordered.h); see bundle_each_frame.
 */
#include "bundle.h"

#include "libckpt/common/error.h"
#include "libckpt/common/ordered.h"
#include "libckpt/common/workers.h"

#include <stdlib.h>

struct slot {
    uint8_t *bytes;
    int rc;
    ckpt_error damage;
};

struct run {
    struct bundle *b;
    bundle_frame_fn use;
    void *ctx;
};

static void *start(void *ctx)
{
    struct bundle_cursor *c;
    return bundle_cursor_take(((struct run *)ctx)->b, &c, NULL) == CKPT_OK ? c : NULL;
}

static void finish(void *ctx, void *worker)
{
    bundle_cursor_give(((struct run *)ctx)->b, worker);
}

static int make(void *ctx, void *worker, size_t item, void *slot, ckpt_error *err)
{
    (void)err;
    struct slot *s = slot;
    s->rc = bundle_decode_frame(((struct run *)ctx)->b, worker, item, s->bytes, &s->damage);
    return CKPT_OK;   /* a damaged frame is the user's to weigh, not the end of the run */
}

static int use(void *ctx, size_t item, void *slot, ckpt_error *err)
{
    const struct run *r = ctx;
    const struct slot *s = slot;
    return r->use(r->ctx, item, s->bytes, s->rc ? &s->damage : NULL, err);
}

static const struct ordered_ops ops = {start, finish, make, use};

int bundle_each_frame(struct bundle *b, unsigned jobs, bundle_frame_fn fn, void *ctx, atomic_int *stop,
                      ckpt_error *err)
{
    const struct bundle_index *ix = bundle_index_of(b);
    unsigned threads = worker_count(jobs, ix->frame_count);
    size_t n = ORDERED_SLOTS(threads);
    struct slot *slots = calloc(n, sizeof *slots);
    void **ring = calloc(n, sizeof *ring);
    int rc = slots && ring ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        ring[i] = &slots[i];
        if (!(slots[i].bytes = malloc((size_t)ix->frame_bytes)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    }
    struct run r = {b, fn, ctx};
    if (!rc)
        rc = ordered_run(ix->frame_count, threads, ring, &ops, &r, stop, err);
    for (size_t i = 0; slots && i < n; i++)
        free(slots[i].bytes);
    free(slots);
    free(ring);
    return rc;
}
