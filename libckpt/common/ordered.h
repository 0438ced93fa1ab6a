/*
 * ordered.h: items made on worker threads, in any order, and used one after
 * the other, in order, on the calling thread (compressing frames while one
 * writer places them; decompressing frames while one writer writes them).
 *
 * Items go through a ring of caller-owned slots, ORDERED_SLOTS(threads) of
 * them: a worker takes the next item when its slot is free, so at most that
 * many items are in flight whatever their number.
 */
#ifndef CKPT_ORDERED_H
#define CKPT_ORDERED_H

#include "ckpt.h"

#include <stdatomic.h>
#include <stddef.h>

#define ORDERED_SLOTS(threads) (2 * (size_t)(threads) + 2)

struct ordered_ops {
    /* A worker's own state (a compression context, an open file), or NULL when out of memory. */
    void *(*start)(void *ctx);
    void (*finish)(void *ctx, void *worker);
    /* Makes item `item` into `slot` on a worker thread. */
    int (*make)(void *ctx, void *worker, size_t item, void *slot, ckpt_error *err);
    /* Uses item `item` from `slot` on the calling thread, items in order. */
    int (*use)(void *ctx, size_t item, void *slot, ckpt_error *err);
};

/*
 * Runs items 0 .. count-1 through `slots` (ORDERED_SLOTS(threads) of them)
 * on `threads` threads.  The first failure stops the run and is returned;
 * `stop`, when set by anyone, ends it with CKPT_ERR_CANCELLED.
 */
int ordered_run(size_t count, unsigned threads, void **slots, const struct ordered_ops *ops, void *ctx,
                atomic_int *stop, ckpt_error *err);

#endif
