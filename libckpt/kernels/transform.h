/*
 * transform.h: what happens to one block of a tensor's lines on its way to
 * the output: an element-type cast (or fp8 block dequantization) and, for
 * NZ layouts, tiling.  execute.c streams blocks through these; they call
 * the kernels.
 */
#ifndef CKPT_TRANSFORM_H
#define CKPT_TRANSFORM_H

#include "ckpt.h"

struct transform {
    ckpt_dtype from, to;
    ckpt_overflow overflow;
    uint64_t line_elems;      /* elements per line (the last dimension) */
    const float *scales;      /* fp8 block scales [scale_rows, scale_cols], or NULL */
    uint64_t scale_rows, scale_cols, block_rows, block_cols;
};

/*
 * Converts `lines` lines from `src` (from-type) to `dst` (to-type).  `row0`
 * is the first line's row within its matrix, to find its fp8 scales.
 */
int transform_lines(const struct transform *t, const void *src, void *dst, uint64_t row0, uint64_t lines,
                    ckpt_cast_counts *counts, ckpt_error *err);

/*
 * Tiles a row-major [rows, cols] matrix into FRACTAL_NZ
 * [ceil(cols/C0), ceil(rows/16)*16, C0], zero-padded; with `transpose` the
 * matrix is first transposed to [cols, rows].
 */
int transform_nz(const void *src, void *dst, uint64_t rows, uint64_t cols, ckpt_dtype dtype, int transpose,
                 ckpt_error *err);

#endif
