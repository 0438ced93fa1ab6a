/*
 * bench_kernels.c: the hot kernels on a 256 MiB bf16 matrix, single thread,
 * as ratios to memcpy of the same bytes measured in the same run (best of
 * five each, so that page faults and frequency ramps do not count).  The
 * fp8 row dequantizes an 8192 x 16384 e4m3 weight (128 MiB, 128 x 128
 * blocks) into the same 256 MiB of bf16, and is compared with memcpy of
 * those 256 MiB.
 */
#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROWS 8192
#define COLS 16384   /* 8192 x 16384 bf16 = 256 MiB */
#define ROUNDS 5
#define BLOCK 128

enum { MEMCPY, CAST, NZ, FP8, KERNELS };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(int kernel, const uint16_t *src, uint16_t *dst, const float *scales, ckpt_cast_counts *counts)
{
    size_t n = (size_t)ROWS * COLS;
    switch (kernel) {
    case MEMCPY: memcpy(dst, src, n * 2); return 0;
    case CAST: return ckpt_cast(CKPT_DTYPE_BF16, src, CKPT_DTYPE_F16, dst, n, CKPT_OVERFLOW_SATURATE, counts, NULL);
    case NZ: return ckpt_nd_to_nz(src, dst, (uint64_t[]){ROWS, COLS}, 2, 16, 0, NULL);
    default:   /* the first 128 MiB of the bf16 source, taken as e4m3 codes */
        return ckpt_fp8_dequant(CKPT_DTYPE_F8_E4M3, src, ROWS, COLS, 0, scales, ROWS / BLOCK, COLS / BLOCK, BLOCK,
                                BLOCK, CKPT_DTYPE_BF16, dst, CKPT_OVERFLOW_SATURATE, counts, NULL);
    }
}

int main(void)
{
    size_t n = (size_t)ROWS * COLS, bytes = n * 2;
    uint16_t *src = malloc(bytes), *dst = malloc(bytes);
    float *scales = malloc((ROWS / BLOCK) * (COLS / BLOCK) * sizeof *scales);
    if (!src || !dst || !scales)
        return 1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        src[i] = (uint16_t)((s & 0x80ff) | (0x3a00 + (i & 7) * 0x100));   /* finite bf16, 2^-11 .. 2^4 */
    }
    for (size_t i = 0; i < (ROWS / BLOCK) * (COLS / BLOCK); i++)
        scales[i] = 1e-3f * (float)(1 + i % 13);
    memset(dst, 1, bytes);
    double best[KERNELS] = {1e9, 1e9, 1e9, 1e9};
    ckpt_cast_counts counts = {0, 0, 0};
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < KERNELS; k++) {
            double t = now();
            if (run(k, src, dst, scales, &counts))
                return 1;
            t = now() - t;
            if (t < best[k])
                best[k] = t;
        }
    static const char *names[KERNELS] = {"memcpy (baseline)", "bf16 -> f16 (ckpt_cast)",
                                         "ND -> FRACTAL_NZ (ckpt_nd_to_nz)", "fp8 e4m3 -> bf16 (ckpt_fp8_dequant)"};
    double mib = (double)bytes / (1 << 20);
    printf("%-37s %9s %9s %10s\n", "kernel (256 MiB bf16, 1 thread)", "seconds", "MiB/s", "vs memcpy");
    for (int k = 0; k < KERNELS; k++)
        printf("%-37s %9.3f %9.0f %9.2fx\n", names[k], best[k], mib / best[k], best[MEMCPY] / best[k]);
    printf("goals: cast >= 0.50x, NZ >= 0.40x (MiB/s of the bf16 side; fp8 reads half as many bytes)\n");
    free(src);
    free(dst);
    free(scales);
    return 0;
}
