/*
 * nz_portable.c: the portable reference of NZ tiling and untiling of one
 * matrix (the layout is described in nz.c).  nz_x86.c's vectorised tiling
 * uses it for the edges it does not cover; the tests prove both agree.
 */
#include "kernels.h"

#include <string.h>

void nz_tile_edge(const uint8_t *src, uint8_t *dst, const struct nz_block *b, uint64_t r_begin, uint64_t r_end,
                  uint64_t j_from)
{
    uint64_t full = b->cols_bytes / b->c0_bytes, tail = b->cols_bytes % b->c0_bytes, c0b = b->c0_bytes;
    for (uint64_t r0 = r_begin; r0 < r_end; r0 += 16) {
        for (uint64_t j = j_from; j < b->j_end; j++) {
            uint8_t *tile = dst + ((j - b->j_begin) * b->stride + r0) * c0b;
            for (uint64_t i = 0; i < 16; i++) {
                uint8_t *row = tile + i * c0b;
                if (r0 + i >= b->rows) {
                    memset(row, 0, c0b);
                } else if (j < full) {
                    memcpy(row, src + (r0 + i) * b->cols_bytes + j * c0b, c0b);
                } else {
                    memcpy(row, src + (r0 + i) * b->cols_bytes + j * c0b, tail);
                    memset(row + tail, 0, c0b - tail);
                }
            }
        }
    }
}

void nz_tile_block_portable(const uint8_t *src, uint8_t *dst, const struct nz_block *b)
{
    nz_tile_edge(src, dst, b, 0, (b->rows + 15) / 16 * 16, b->j_begin);
}

struct nz_block nz_whole(uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes)
{
    return (struct nz_block){rows, cols_bytes, c0_bytes, (rows + 15) / 16 * 16, 0,
                             (cols_bytes + c0_bytes - 1) / c0_bytes};
}

void nz_tile_portable(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes)
{
    struct nz_block b = nz_whole(rows, cols_bytes, c0_bytes);
    nz_tile_block_portable(src, dst, &b);
}

/* The inverse, also tile by tile; padding is skipped. */
void nz_untile_portable(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes)
{
    uint64_t n1 = (cols_bytes + c0_bytes - 1) / c0_bytes, mp = (rows + 15) / 16 * 16;
    for (uint64_t r0 = 0; r0 < rows; r0 += 16) {
        uint64_t height = rows - r0 < 16 ? rows - r0 : 16;
        for (uint64_t j = 0; j < n1; j++) {
            const uint8_t *tile = src + (j * mp + r0) * c0_bytes;
            uint64_t len = cols_bytes - j * c0_bytes < c0_bytes ? cols_bytes - j * c0_bytes : c0_bytes;
            for (uint64_t i = 0; i < height; i++)
                memcpy(dst + (r0 + i) * cols_bytes + j * c0_bytes, tile + i * c0_bytes, len);
        }
    }
}
