/* verify.h: what verify.c, fidelity.c and diff.c share. */
#ifndef CKPT_VERIFY_H
#define CKPT_VERIFY_H

#include "ckpt.h"
#include "manifest_read.h"

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
};

void reporter_init(struct reporter *r, ckpt_finding_fn fn, void *payload);
void reporter_free(struct reporter *r);

/* Reports one finding with a formatted message. */
void report_finding(struct reporter *r, ckpt_finding f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Counts bytes hashed or compared, and tells the progress callback. */
void reporter_add_bytes(struct reporter *r, uint64_t bytes);

/* Bytes to read that the manifest did not foresee (a file larger than listed, a second pass). */
void reporter_add_total(struct reporter *r, uint64_t bytes);

/* Proves every tensor of the manifest against converting `source` (fidelity.c). */
int verify_fidelity(const char *dst, const struct manifest *m, const ckpt_verify_options *opts, struct reporter *r,
                    ckpt_error *err);

/* The number of worker threads for `jobs` (0: one per core), at most `work` and 64. */
unsigned worker_count(unsigned jobs, size_t work);

/* Runs fn(arg) on n threads (n <= 64) and waits for them; inline when no thread can start. */
void run_on_threads(unsigned n, void *(*fn)(void *), void *arg);

#endif
