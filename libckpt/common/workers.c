/* workers.c: a fixed set of threads running one function over shared work. */
#include "workers.h"

#include <pthread.h>
#include <unistd.h>

unsigned worker_count(unsigned jobs, size_t work)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = jobs ? jobs : (cores > 0 ? (unsigned)cores : 1);
    if (n > work)
        n = work ? (unsigned)work : 1;
    return n > 64 ? 64 : n;
}

void run_on_threads(unsigned n, void *(*fn)(void *), void *arg)
{
    pthread_t threads[64];
    unsigned started = 0;
    for (; started < n && started < 64; started++)
        if (pthread_create(&threads[started], NULL, fn, arg) != 0)
            break;
    if (started == 0)
        fn(arg);
    for (unsigned t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
}
