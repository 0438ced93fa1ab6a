/*
 * report.c: findings and progress of a verify or diff run, serialised to the
 * caller's callbacks from any worker thread.
 */
#include "report.h"

#include "libckpt/common/checked.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void reporter_init(struct reporter *r, ckpt_finding_fn fn, void *payload)
{
    memset(r, 0, sizeof *r);
    r->fn = fn;
    r->payload = payload;
    pthread_mutex_init(&r->lock, NULL);
}

void reporter_free(struct reporter *r)
{
    pthread_mutex_destroy(&r->lock);
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
    r->summary.checks++;
    r->summary.failures += !f.ok;
    if (r->fn && r->fn(r->payload, &f) != 0)
        atomic_store(&r->stop, 1);
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
