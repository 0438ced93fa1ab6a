/*
 * kernels.h: the inside of the element-type and layout kernels, for the
 * library and its tests.  Each hot kernel has a portable reference and, on
 * x86 with AVX2 and F16C, a vectorised path chosen at run time; the tests
 * prove both give the same bytes.
 */
#ifndef CKPT_KERNELS_H
#define CKPT_KERNELS_H

#include "ckpt.h"

#include <stdbool.h>

/* The portable reference for any pair of floating types; CKPT_ERR_UNSUPPORTED for others. */
int cast_portable(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t count, ckpt_overflow overflow,
                  ckpt_cast_counts *counts, ckpt_error *err);

/*
 * The vectorised path.  Returns false, doing nothing, when this CPU or this
 * pair of types has none.  Overflow under CKPT_OVERFLOW_ERROR is reported
 * through *overflowed (the caller turns it into the error).
 */
bool cast_fast(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t count, ckpt_overflow overflow,
               ckpt_cast_counts *counts);

/*
 * The int8 weight quantizer (quant.c): the portable reference and the
 * vectorised path.  Both return false on a row holding a NaN or an infinity,
 * naming it in *bad_row; quant_fast returns false without doing anything when
 * this CPU or type has no fast path (then *ok is untouched).  `q` may be NULL
 * (scales only), `scales` too.
 */
bool quant_portable(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales,
                    uint64_t *bad_row);
bool quant_fast(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales, bool *ok,
                uint64_t *bad_row);

/* The two chosen as ckpt_quantize_int8 chooses (the type already checked). */
bool quant_rows(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales,
                uint64_t *bad_row);

/* True when the CPU has AVX2 and F16C (asked of cpuid once per process, under pthread_once). */
bool cpu_has_avx2_f16c(void);

/* How one value fared in a cast. */
enum cast_class { CAST_EXACT_OR_ROUNDED, CAST_OVERFLOW, CAST_SUBNORMAL, CAST_FLUSHED };

/*
 * FRACTAL_NZ with an explicit C0 (elements of a tile row): the storage shape
 * (ckpt_nz_shape's, with that C0) and the tiling or untiling of a batch of
 * matrices (ckpt_nd_to_nz / ckpt_nz_to_nd with that C0).
 */
int nz_shape_c0(const uint64_t *nd_shape, uint32_t rank, unsigned elem_bits, uint64_t c0, int transpose,
                uint64_t *nz_shape, uint32_t *nz_rank, ckpt_error *err);
int nz_convert(const void *src, void *dst, const uint64_t *shape, uint32_t rank, unsigned elem_bits, uint64_t c0,
               int transpose, bool tile, ckpt_error *err);

/*
 * NZ tiling of one row-major matrix of `rows` rows of `cols_bytes` bytes into
 * [ceil(cols_bytes/c0_bytes), ceil(rows/16)*16, c0_bytes] bytes, zero padded:
 * the portable reference and the vectorised path, and their inverse.
 */
void nz_tile_portable(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes);
void nz_tile_fast(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes);
void nz_untile_portable(const uint8_t *src, uint8_t *dst, uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes);

/*
 * A block of `rows` rows (of `cols_bytes` bytes) of a matrix, tiled into the
 * column blocks [j_begin, j_end) of an NZ destination whose column blocks
 * hold `stride` rows each: block j's tile rows go to dst + (j - j_begin) *
 * stride * c0_bytes, from the destination's first row on.  Callers place a
 * row block by offsetting dst by its first row (a multiple of 16) times
 * c0_bytes; the rows from `rows` up to the next multiple of 16 are zeroed,
 * so stride must be at least that.  This is what lets the sink fill a whole
 * matrix, or a panel of its column blocks, from row blocks, and write it
 * out in one piece.
 */
struct nz_block {
    uint64_t rows, cols_bytes, c0_bytes, stride, j_begin, j_end;
};
struct nz_block nz_whole(uint64_t rows, uint64_t cols_bytes, uint64_t c0_bytes);   /* every column, stride padded rows */
void nz_tile_block(const uint8_t *src, uint8_t *dst, const struct nz_block *b);
void nz_tile_block_portable(const uint8_t *src, uint8_t *dst, const struct nz_block *b);

/* The portable tiling of row blocks [r_begin, r_end) (multiples of 16) and column blocks from j_from. */
void nz_tile_edge(const uint8_t *src, uint8_t *dst, const struct nz_block *b, uint64_t r_begin, uint64_t r_end,
                  uint64_t j_from);

#endif
