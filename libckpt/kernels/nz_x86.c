/*
 * nz_x86.c: the NZ tiling inner loop with AVX2: each tile row is one or two
 * 32-byte moves, sixteen rows unrolled, for every whole tile; edge tiles
 * (the last rows and the last, partial column block) are left to the
 * portable code, which zero-pads them.  Without AVX2 (or off x86) the
 * portable code does it all.
 */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

__attribute__((target("avx2"))) static void tile_whole(const uint8_t *src, uint8_t *dst, uint64_t rows_whole,
                                                       const struct nz_block *b, uint64_t j_full, int wide)
{
    const uint64_t c0b = wide ? 64 : 32, cols_bytes = b->cols_bytes;
    for (uint64_t r0 = 0; r0 < rows_whole; r0 += 16) {
        const uint8_t *block = src + r0 * cols_bytes;
        for (uint64_t j = b->j_begin; j < j_full; j++) {
            uint8_t *tile = dst + ((j - b->j_begin) * b->stride + r0) * c0b;
            const uint8_t *col = block + j * c0b;
            for (int i = 0; i < 16; i++) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(col + (uint64_t)i * cols_bytes));
                _mm256_storeu_si256((__m256i *)(tile + i * c0b), a);
                if (wide) {
                    __m256i c = _mm256_loadu_si256((const __m256i *)(col + (uint64_t)i * cols_bytes + 32));
                    _mm256_storeu_si256((__m256i *)(tile + i * 64 + 32), c);
                }
            }
        }
    }
}

void nz_tile_block(const uint8_t *src, uint8_t *dst, const struct nz_block *b)
{
    uint64_t c0b = b->c0_bytes;
    if (!cpu_has_avx2_f16c() || (c0b != 32 && c0b != 64) || b->rows < 16 || b->cols_bytes < c0b) {
        nz_tile_block_portable(src, dst, b);
        return;
    }
    uint64_t mp = (b->rows + 15) / 16 * 16, rows_whole = b->rows / 16 * 16, full = b->cols_bytes / c0b;
    uint64_t j_full = full < b->j_end ? full : b->j_end;   /* whole column blocks of the range */
    if (j_full > b->j_begin)
        tile_whole(src, dst, rows_whole, b, j_full, c0b == 64);
    /* the edges: the last partial column block for the whole rows, then every block of the last rows */
    if (j_full < b->j_end)
        nz_tile_edge(src, dst, b, 0, rows_whole, j_full > b->j_begin ? j_full : b->j_begin);
    if (rows_whole < mp)
        nz_tile_edge(src, dst, b, rows_whole, mp, b->j_begin);
}

#else

void nz_tile_block(const uint8_t *src, uint8_t *dst, const struct nz_block *b)
{
    nz_tile_block_portable(src, dst, b);
}

#endif

void nz_tile_fast(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes)
{
    struct nz_block b = nz_whole(rows, cols_bytes, c0_bytes);
    nz_tile_block(src, dst, &b);
}
