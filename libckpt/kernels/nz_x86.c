/*
 * nz_x86.c: the NZ tiling inner loop with AVX2: each tile row is one or two
 * 32-byte moves, sixteen rows unrolled, for every whole tile; edge tiles
 * (the last rows and the last, partial column block) are left to the
 * portable code, which zero-pads them.
 */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

__attribute__((target("avx2"))) static void tile_whole(const uint8_t *src, uint8_t *dst, uint64_t rows_whole,
                                                       uint64_t cols_bytes, uint64_t mp, uint64_t full, int wide)
{
    for (uint64_t r0 = 0; r0 < rows_whole; r0 += 16) {
        const uint8_t *block = src + r0 * cols_bytes;
        for (uint64_t j = 0; j < full; j++) {
            uint8_t *tile = dst + (j * mp + r0) * (wide ? 64 : 32);
            const uint8_t *col = block + j * (wide ? 64 : 32);
            for (int i = 0; i < 16; i++) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(col + (uint64_t)i * cols_bytes));
                _mm256_storeu_si256((__m256i *)(tile + i * (wide ? 64 : 32)), a);
                if (wide) {
                    __m256i b = _mm256_loadu_si256((const __m256i *)(col + (uint64_t)i * cols_bytes + 32));
                    _mm256_storeu_si256((__m256i *)(tile + i * 64 + 32), b);
                }
            }
        }
    }
}

void nz_tile_fast(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes)
{
    if (!cpu_has_avx2_f16c() || (c0_bytes != 32 && c0_bytes != 64) || rows < 16 || cols_bytes < c0_bytes) {
        nz_tile_portable(src, dst, rows, cols_bytes, c0_bytes);
        return;
    }
    uint64_t mp = (rows + 15) / 16 * 16, rows_whole = rows / 16 * 16, full = cols_bytes / c0_bytes;
    tile_whole(src, dst, rows_whole, cols_bytes, mp, full, c0_bytes == 64);
    /* the edges: the last partial column block for the whole rows, then every block of the last rows */
    if (full * c0_bytes < cols_bytes)
        nz_tile_edge(src, dst, 0, rows_whole, rows, cols_bytes, c0_bytes, full);
    if (rows_whole < mp)
        nz_tile_edge(src, dst, rows_whole, mp, rows, cols_bytes, c0_bytes, 0);
}

#else

void nz_tile_fast(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes)
{
    nz_tile_portable(src, dst, rows, cols_bytes, c0_bytes);
}

#endif
