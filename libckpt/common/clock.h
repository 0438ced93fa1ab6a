/* clock.h: a monotonic clock in seconds, for the durations the summaries report. */
#ifndef CKPT_CLOCK_H
#define CKPT_CLOCK_H

#include <time.h>

static inline double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
