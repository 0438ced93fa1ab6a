/* progress.c: the progress line convert and verify draw on a terminal; see cli.h. */
#include "cli.h"

#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_start(struct cli_progress *p, int show)
{
    *p = (struct cli_progress){now(), 0, 0, show};
}

int cli_progress_show(void *payload, uint64_t done, uint64_t total)
{
    struct cli_progress *p = payload;
    double t = now();
    if (!p->show || (t - p->last < 0.2 && done < total))
        return cli_interrupted();
    p->last = t;
    done = total && done > total ? total : done;   /* a file hashed twice to find a changed tensor */
    double rate = done / (t - p->start + 1e-9);
    char d[32], r[32];
    cli_format_bytes(d, sizeof d, done);
    cli_format_bytes(r, sizeof r, (uint64_t)rate);
    if (total)
        fprintf(stderr, "\r%5.1f%%  %s  %s/s  %.0fs left   ", 100.0 * done / total, d, r,
                rate > 0 ? (double)(total - done) / rate : 0);
    else
        fprintf(stderr, "\r%s  %s/s   ", d, r);
    p->drawn = !(total && done >= total);
    if (!p->drawn)
        fputc('\n', stderr);   /* done: the line stays */
    return cli_interrupted();
}

void cli_progress_clear(struct cli_progress *p)
{
    if (p && p->drawn) {
        fputs("\r\033[K", stderr);   /* back to the line's start, and erase it */
        p->drawn = 0;
    }
}
