/*
 * nz.c: ND <-> FRACTAL_NZ, the tiling Ascend matmuls read weights in.
 *
 * An ND tensor (..., M, N) becomes (..., ceil(N/C0), ceil(M/16), 16, C0):
 * tiles of 16 rows by C0 columns, column blocks outermost, zero padded.
 * C0 is 32 bytes of a row (16 two-byte, 32 one-byte, 64 packed int4
 * elements) and, by default, 16 for four-byte elements (torch_npu's and
 * GE's choice; aclnnNpuFormatCast uses 8 on A2/A3, which callers inside the
 * library can ask for through nz_convert).  Both directions go tile by
 * tile: a block of 16 rows is visited once, and each of its column blocks
 * is one contiguous run of 16*C0 elements on the NZ side, so neither side is
 * walked through strided memory element by element.
 */
#include "kernels.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdlib.h>
#include <string.h>

uint64_t ckpt_nz_c0(unsigned elem_bits)
{
    return elem_bits == 32 ? 16 : 256 / elem_bits;
}

static bool valid_bits(unsigned bits)
{
    return bits == 4 || bits == 8 || bits == 16 || bits == 32;
}

int nz_shape_c0(const uint64_t *nd_shape, uint32_t rank, unsigned elem_bits, uint64_t c0, int transpose,
                uint64_t *nz_shape, uint32_t *nz_rank, ckpt_error *err)
{
    if (rank == 0 || rank > 64 || !valid_bits(elem_bits) || (transpose && rank < 2))
        return ckpt_fail(err, CKPT_ERR_ARG, "NZ needs rank 1 to 64 (2 to transpose) and 4, 8, 16 or 32-bit elements");
    if (c0 == 0 || c0 * elem_bits % 8 != 0 || c0 * elem_bits > 512)
        return ckpt_fail(err, CKPT_ERR_ARG, "NZ tile rows of %llu %u-bit elements are not whole bytes of at most 64",
                         (unsigned long long)c0, elem_bits);
    uint64_t m = rank == 1 ? 1 : nd_shape[rank - 2], n = nd_shape[rank - 1];
    if (transpose) {
        uint64_t t = m;
        m = n;
        n = t;
    }
    uint32_t batch = rank >= 2 ? rank - 2 : 0;
    memmove(nz_shape, nd_shape, batch * sizeof *nz_shape);
    nz_shape[batch] = n / c0 + (n % c0 != 0);
    nz_shape[batch + 1] = m / 16 + (m % 16 != 0);
    nz_shape[batch + 2] = 16;
    nz_shape[batch + 3] = c0;
    *nz_rank = batch + 4;
    /* the size in bits must fit, unless a zero extent makes it zero whatever the others */
    bool empty = false;
    for (uint32_t d = 0; d < *nz_rank; d++)
        empty |= nz_shape[d] == 0;
    uint64_t count;
    if (!empty && (!ckpt_product_u64(nz_shape, *nz_rank, &count) || !ckpt_mul_u64(count, elem_bits, &count)))
        return ckpt_fail(err, CKPT_ERR_ARG, "NZ shape overflows 64 bits");
    return CKPT_OK;
}

int ckpt_nz_shape(const uint64_t *nd_shape, uint32_t rank, unsigned elem_bits, int transpose, uint64_t *nz_shape,
                  uint32_t *nz_rank, ckpt_error *err)
{
    if (!valid_bits(elem_bits))
        return ckpt_fail(err, CKPT_ERR_ARG, "NZ needs rank 1 to 64 (2 to transpose) and 4, 8, 16 or 32-bit elements");
    return nz_shape_c0(nd_shape, rank, elem_bits, ckpt_nz_c0(elem_bits), transpose, nz_shape, nz_rank, err);
}

/*
 * Transposes a [rows, cols] matrix of `es`-byte elements in 16 x 16 blocks,
 * so that both sides stay in cache.  Inlined per element size: a copy of a
 * constant size is one move, a call to memcpy per element is not.
 */
static inline __attribute__((always_inline)) void transpose_es(const uint8_t *src, uint8_t *dst, uint64_t rows,
                                                               uint64_t cols, size_t es)
{
    for (uint64_t i0 = 0; i0 < rows; i0 += 16)
        for (uint64_t j0 = 0; j0 < cols; j0 += 16)
            for (uint64_t i = i0; i < i0 + 16 && i < rows; i++)
                for (uint64_t j = j0; j < j0 + 16 && j < cols; j++)
                    memcpy(dst + (j * rows + i) * es, src + (i * cols + j) * es, es);
}

static void transpose_blocked(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols, size_t es)
{
    switch (es) {
    case 1: transpose_es(src, dst, rows, cols, 1); break;
    case 2: transpose_es(src, dst, rows, cols, 2); break;
    default: transpose_es(src, dst, rows, cols, 4); break;
    }
}

/* Walks the batch of matrices of an ND shape, tiling or untiling each. */
int nz_convert(const void *src, void *dst, const uint64_t *shape, uint32_t rank, unsigned elem_bits, uint64_t c0,
               int transpose, bool tile, ckpt_error *err)
{
    uint64_t nz[68];
    uint32_t nz_rank;
    int rc = nz_shape_c0(shape, rank, elem_bits, c0, transpose, nz, &nz_rank, err);
    if (rc)
        return rc;
    if (transpose && elem_bits == 4)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "transposing packed int4 is not supported");
    uint64_t m = rank == 1 ? 1 : shape[rank - 2], n = shape[rank - 1], count;
    if (elem_bits == 4 && n % 2)
        return ckpt_fail(err, CKPT_ERR_ARG, "packed int4 rows need an even number of elements");
    /*
     * Without a zero extent the padded NZ form is the larger and its size was
     * checked, so nothing below wraps; with one (the only way this product can
     * overflow) there is nothing to move.
     */
    if (!ckpt_product_u64(shape, rank, &count) || count == 0)
        return CKPT_OK;
    uint64_t batches = count / (m * n), c0b = c0 * elem_bits / 8;
    /* the tiled matrix: [m, n] as stored, or [n, m] when transposed */
    uint64_t tm = transpose ? n : m, tn_bytes = (transpose ? m : n) * elem_bits / 8;
    uint64_t nd_bytes = m * n * elem_bits / 8, nz_bytes = nz[nz_rank - 4] * nz[nz_rank - 3] * 16 * c0b;
    uint8_t *tmp = NULL;
    if (transpose && !(tmp = malloc(nd_bytes)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory transposing a %llu-byte matrix",
                         (unsigned long long)nd_bytes);
    const uint8_t *s = src;
    uint8_t *d = dst;
    size_t es = elem_bits / 8;
    for (uint64_t b = 0; b < batches; b++) {
        if (tile) {
            const uint8_t *matrix = s + b * nd_bytes;
            if (transpose) {
                transpose_blocked(matrix, tmp, m, n, es);
                matrix = tmp;
            }
            nz_tile_fast(matrix, d + b * nz_bytes, tm, tn_bytes, c0b);
        } else if (transpose) {
            nz_untile_portable(s + b * nz_bytes, tmp, tm, tn_bytes, c0b);
            transpose_blocked(tmp, d + b * nd_bytes, tm, m, es);
        } else {
            nz_untile_portable(s + b * nz_bytes, d + b * nd_bytes, tm, tn_bytes, c0b);
        }
    }
    free(tmp);
    return CKPT_OK;
}

int ckpt_nd_to_nz(const void *src, void *dst, const uint64_t *shape, uint32_t rank, unsigned elem_bits, int transpose,
                  ckpt_error *err)
{
    return nz_convert(src, dst, shape, rank, elem_bits, valid_bits(elem_bits) ? ckpt_nz_c0(elem_bits) : 0, transpose,
                      true, err);
}

int ckpt_nz_to_nd(const void *src, void *dst, const uint64_t *shape, uint32_t rank, unsigned elem_bits, int transpose,
                  ckpt_error *err)
{
    return nz_convert(src, dst, shape, rank, elem_bits, valid_bits(elem_bits) ? ckpt_nz_c0(elem_bits) : 0, transpose,
                      false, err);
}
