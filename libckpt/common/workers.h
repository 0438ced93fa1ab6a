/* workers.h: a fixed set of threads running one function over shared work. */
#ifndef CKPT_WORKERS_H
#define CKPT_WORKERS_H

#include <stddef.h>

/* The number of worker threads for `jobs` (0: one per core), at most `work` and 64. */
unsigned worker_count(unsigned jobs, size_t work);

/* Runs fn(arg) on n threads (n <= 64) and waits for them; inline when no thread can start. */
void run_on_threads(unsigned n, void *(*fn)(void *), void *arg);

#endif
