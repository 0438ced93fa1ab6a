/*
 * report.c: findings and progress of a verify or diff run, serialised to the
 * caller's callbacks from any worker thread.
 */
#include "report.h"

#include "libckpt/common/checked.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A finding held back, with its own copies of the strings. */
struct held_finding {
    ckpt_finding f;
    char *file, *tensor, *message;
};

struct held_unit {
    struct held_finding *items;
    size_t count, cap;
    bool ended;
    bool lost;   /* out of memory holding one: the unit's findings go out when found instead */
};

/* The unit this thread works on, for the reporter it works for (reporter_unit_begin). */
static _Thread_local struct {
    const struct reporter *r;
    size_t unit;
} current;

void reporter_init(struct reporter *r, ckpt_finding_fn fn, void *payload)
{
    memset(r, 0, sizeof *r);
    r->fn = fn;
    r->payload = payload;
    pthread_mutex_init(&r->lock, NULL);
}

void reporter_free(struct reporter *r)
{
    reporter_order_end(r);
    pthread_mutex_destroy(&r->lock);
}

/* Counts and delivers one finding; the lock is held. */
static void deliver(struct reporter *r, const ckpt_finding *f)
{
    r->summary.checks++;
    r->summary.failures += !f->ok;
    if (r->fn && r->fn(r->payload, f) != 0)
        atomic_store(&r->stop, 1);
}

static bool hold(struct held_unit *u, const ckpt_finding *f)
{
    if (u->count == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 16;
        struct held_finding *grown = realloc(u->items, cap * sizeof *grown);
        if (!grown)
            return false;
        u->items = grown;
        u->cap = cap;
    }
    struct held_finding *h = &u->items[u->count];
    h->file = f->file ? strdup(f->file) : NULL;
    h->tensor = f->tensor ? strdup(f->tensor) : NULL;
    h->message = strdup(f->message);
    if ((f->file && !h->file) || (f->tensor && !h->tensor) || !h->message) {
        free(h->file);
        free(h->tensor);
        free(h->message);
        return false;
    }
    h->f = *f;
    h->f.file = h->file;
    h->f.tensor = h->tensor;
    h->f.message = h->message;
    u->count++;
    return true;
}

/* Delivers and frees what unit `u` holds; the lock is held. */
static void release(struct reporter *r, struct held_unit *u)
{
    for (size_t i = 0; i < u->count; i++) {
        deliver(r, &u->items[i].f);
        free(u->items[i].file);
        free(u->items[i].tensor);
        free(u->items[i].message);
    }
    free(u->items);
    u->items = NULL;
    u->count = u->cap = 0;
}

void report_finding(struct reporter *r, ckpt_finding f, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    f.message = message;
    pthread_mutex_lock(&r->lock);
    bool ordered = r->units && current.r == r && current.unit < r->unit_count;
    struct held_unit *u = ordered ? &r->units[current.unit] : NULL;
    if (!u || current.unit == r->next_unit || u->lost || !hold(u, &f)) {
        if (u && current.unit != r->next_unit)
            u->lost = true;   /* out of memory: order given up for this unit rather than a finding */
        deliver(r, &f);
    }
    pthread_mutex_unlock(&r->lock);
}

void reporter_order(struct reporter *r, size_t count)
{
    reporter_order_end(r);
    pthread_mutex_lock(&r->lock);
    r->units = count ? calloc(count, sizeof *r->units) : NULL;   /* NULL: unordered, as before */
    r->unit_count = r->units ? count : 0;
    r->next_unit = 0;
    pthread_mutex_unlock(&r->lock);
}

void reporter_unit_begin(struct reporter *r, size_t unit)
{
    current.r = r;
    current.unit = unit;
}

void reporter_unit_end(struct reporter *r, size_t unit)
{
    current.r = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->units && unit < r->unit_count) {
        r->units[unit].ended = true;
        /* the units now due: each one's held findings, in order, until one still running */
        while (r->next_unit < r->unit_count && r->units[r->next_unit].ended) {
            r->next_unit++;
            if (r->next_unit < r->unit_count)
                release(r, &r->units[r->next_unit]);
        }
    }
    pthread_mutex_unlock(&r->lock);
}

void reporter_order_end(struct reporter *r)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = r->next_unit; r->units && i < r->unit_count; i++)
        release(r, &r->units[i]);
    free(r->units);
    r->units = NULL;
    r->unit_count = r->next_unit = 0;
    pthread_mutex_unlock(&r->lock);
}

void reporter_add_bytes(struct reporter *r, uint64_t bytes)
{
    pthread_mutex_lock(&r->lock);
    r->summary.bytes += bytes;
    if (r->progress && !r->cancelled && r->progress(r->progress_payload, r->summary.bytes, r->total_bytes) != 0) {
        r->cancelled = true;
        atomic_store(&r->stop, 1);
    }
    pthread_mutex_unlock(&r->lock);
}

void reporter_add_total(struct reporter *r, uint64_t bytes)
{
    pthread_mutex_lock(&r->lock);
    if (r->total_bytes && !ckpt_add_u64(r->total_bytes, bytes, &r->total_bytes))
        r->total_bytes = 0;   /* past 2^64: no total */
    pthread_mutex_unlock(&r->lock);
}
