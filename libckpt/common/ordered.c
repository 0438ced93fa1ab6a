/* ordered.c: see ordered.h. */
#include "ordered.h"

#include "error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct run {
    size_t count;
    void **slots;
    bool *ready;
    size_t slot_count;
    const struct ordered_ops *ops;
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    size_t claimed, used;     /* items taken by workers, and used in order */
    bool failed;
    ckpt_error err;
    atomic_int *stop;
};

static void fail(struct run *r, const ckpt_error *e)
{
    pthread_mutex_lock(&r->lock);
    if (!r->failed) {
        r->failed = true;
        r->err = *e;
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static void *work(void *arg)
{
    struct run *r = arg;
    void *w = r->ops->start(r->ctx);
    ckpt_error err;
    if (!w) {
        ckpt_fail(&err, CKPT_ERR_NOMEM, "out of memory for a worker thread");
        fail(r, &err);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (!r->failed && r->claimed < r->count && r->claimed - r->used >= r->slot_count)
            pthread_cond_wait(&r->changed, &r->lock);
        if (r->failed || r->claimed >= r->count || atomic_load(r->stop)) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        size_t item = r->claimed++;
        size_t slot = item % r->slot_count;
        pthread_mutex_unlock(&r->lock);
        if (r->ops->make(r->ctx, w, item, r->slots[slot], &err) != CKPT_OK) {
            fail(r, &err);
            break;
        }
        pthread_mutex_lock(&r->lock);
        r->ready[slot] = true;
        pthread_cond_broadcast(&r->changed);
        pthread_mutex_unlock(&r->lock);
    }
    r->ops->finish(r->ctx, w);
    return NULL;
}

/* Uses the items in order as the workers finish them. */
static void use_in_order(struct run *r)
{
    for (size_t item = 0; item < r->count; item++) {
        size_t slot = item % r->slot_count;
        pthread_mutex_lock(&r->lock);
        while (!r->failed && !r->ready[slot] && !atomic_load(r->stop))
            pthread_cond_wait(&r->changed, &r->lock);
        bool stop = r->failed || !r->ready[slot];
        pthread_mutex_unlock(&r->lock);
        if (stop)
            break;
        ckpt_error err;
        if (r->ops->use(r->ctx, item, r->slots[slot], &err) != CKPT_OK) {
            fail(r, &err);
            break;
        }
        pthread_mutex_lock(&r->lock);
        r->ready[slot] = false;
        r->used++;
        pthread_cond_broadcast(&r->changed);
        pthread_mutex_unlock(&r->lock);
    }
}

int ordered_run(size_t count, unsigned threads, void **slots, const struct ordered_ops *ops, void *ctx,
                atomic_int *stop, ckpt_error *err)
{
    if (threads < 1 || threads > 64)
        threads = threads < 1 ? 1 : 64;
    struct run r = {count, slots, calloc(ORDERED_SLOTS(threads), sizeof(bool)), ORDERED_SLOTS(threads), ops, ctx,
                    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false, {0}, stop};
    if (!r.ready)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    pthread_t t[64];
    unsigned started = 0;
    while (started < threads && pthread_create(&t[started], NULL, work, &r) == 0)
        started++;
    int rc = started ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "cannot start a worker thread");
    if (!rc)
        use_in_order(&r);
    pthread_mutex_lock(&r.lock);
    if (!rc && !r.failed && r.used < r.count) {
        r.failed = true;
        ckpt_fail(&r.err, CKPT_ERR_CANCELLED, "cancelled");
    }
    pthread_cond_broadcast(&r.changed);
    pthread_mutex_unlock(&r.lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    if (!rc && r.failed)
        rc = ckpt_fail(err, r.err.code, "%s", r.err.message);
    free(r.ready);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.changed);
    return rc;
}
