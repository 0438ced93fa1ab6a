/* report.h: how verify.c, fidelity.c and diff.c report findings and progress. */
#ifndef CKPT_REPORT_H
#define CKPT_REPORT_H

#include "ckpt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Serialises findings to the caller's callback and counts them. */
struct reporter {
    ckpt_finding_fn fn;
    void *payload;
    ckpt_progress_fn progress;   /* told summary.bytes of total_bytes, or NULL */
    void *progress_payload;
    uint64_t total_bytes;
    pthread_mutex_t lock;
    ckpt_verify_summary summary;
    atomic_int stop;     /* a callback asked to stop */
    bool cancelled;      /* ... and it was the progress callback */
    struct held_unit *units;   /* reporter_order: findings of units not yet due */
    size_t unit_count, next_unit;
};

void reporter_init(struct reporter *r, ckpt_finding_fn fn, void *payload);
void reporter_free(struct reporter *r);

/* Reports one finding with a formatted message. */
void report_finding(struct reporter *r, ckpt_finding f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Findings in the same order every run, whatever thread finds them: the
 * work is cut into `count` units (files, tensors) numbered in the order
 * their findings must come; a worker brackets each unit with
 * reporter_unit_begin / _end, and a finding made on that thread in between
 * is held until every earlier unit has ended.  Findings made outside units
 * go out at once.  reporter_order_end delivers what is still held (a run
 * stopped early) and returns to unordered reporting.
 */
void reporter_order(struct reporter *r, size_t count);
void reporter_unit_begin(struct reporter *r, size_t unit);
void reporter_unit_end(struct reporter *r, size_t unit);
void reporter_order_end(struct reporter *r);

/* Counts bytes hashed or compared, and tells the progress callback. */
void reporter_add_bytes(struct reporter *r, uint64_t bytes);

/* Bytes to read that the manifest did not foresee (a file larger than listed, a second pass). */
void reporter_add_total(struct reporter *r, uint64_t bytes);

#endif
