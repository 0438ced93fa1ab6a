/*
 * bench_kernels.c: the hot kernels on a 256 MiB bf16 matrix, single thread,
 * as ratios to memcpy of the same bytes measured in the same run (best of
 * five each, so that page faults and frequency ramps do not count).
 */
#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROWS 8192
#define COLS 16384   /* 8192 x 16384 bf16 = 256 MiB */
#define ROUNDS 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    size_t n = (size_t)ROWS * COLS, bytes = n * 2;
    uint16_t *src = malloc(bytes), *dst = malloc(bytes + (1 << 20));
    if (!src || !dst)
        return 1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        src[i] = (uint16_t)((s & 0x80ff) | (0x3a00 + (i & 7) * 0x100));   /* finite bf16, 2^-11 .. 2^4 */
    }
    memset(dst, 1, bytes);
    double best[3] = {1e9, 1e9, 1e9};
    ckpt_cast_counts counts = {0, 0, 0};
    for (int r = 0; r < ROUNDS; r++) {
        double t = now();
        memcpy(dst, src, bytes);
        if (now() - t < best[0])
            best[0] = now() - t;
        t = now();
        if (ckpt_cast(CKPT_DTYPE_BF16, src, CKPT_DTYPE_F16, dst, n, CKPT_OVERFLOW_SATURATE, &counts, NULL))
            return 1;
        if (now() - t < best[1])
            best[1] = now() - t;
        t = now();
        if (ckpt_nd_to_nz(src, dst, (uint64_t[]){ROWS, COLS}, 2, 16, 0, NULL))
            return 1;
        if (now() - t < best[2])
            best[2] = now() - t;
    }
    double mib = (double)bytes / (1 << 20);
    printf("%-34s %9s %9s %12s\n", "kernel (256 MiB bf16, 1 thread)", "seconds", "MiB/s", "vs memcpy");
    printf("%-34s %9.3f %9.0f %12s\n", "memcpy (baseline)", best[0], mib / best[0], "1.00");
    printf("%-34s %9.3f %9.0f %11.2fx\n", "bf16 -> f16 (ckpt_cast)", best[1], mib / best[1], best[0] / best[1]);
    printf("%-34s %9.3f %9.0f %11.2fx\n", "ND -> FRACTAL_NZ (ckpt_nd_to_nz)", best[2], mib / best[2], best[0] / best[2]);
    printf("goals: cast >= 0.50x, NZ >= 0.40x\n");
    free(src);
    free(dst);
    return 0;
}
