/*
 * synthetic.h: the pseudo-random bf16 values every benchmark generator writes,
 * so that the same checkpoint written as safetensors and as torch.save holds
 * the same bytes in the same order.
 */
#ifndef CKPT_BENCH_SYNTHETIC_H
#define CKPT_BENCH_SYNTHETIC_H

#include <stdint.h>

#define SYNTHETIC_SEED 0x9e3779b97f4a7c15ull

/* Fills `row` with `cols` finite bf16 values (exponents 0x3a..0x41: magnitudes 2^-12 .. 2^3), advancing `seed`. */
static inline void synthetic_row(uint16_t *row, uint64_t cols, uint64_t *seed)
{
    for (uint64_t c = 0; c < cols; c++) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        row[c] = (uint16_t)(((*seed >> 20) & 0x80ff) | (0x3a00 + (c & 7) * 0x100));
    }
}

#endif
