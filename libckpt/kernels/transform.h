/*
 * transform.h: what happens to one block of a tensor's lines on its way to
 * the output: an element-type cast (or fp8 block dequantization), or for a
 * quantized linear the weight loaded in its load type then quantized, and
 * for NZ layouts tiling.  The sink's stream.c pushes blocks through these;
 * they call the kernels.
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
    ckpt_quant_role role;     /* a quantized linear's weight or scale: `to` is then I8 or F32 */
    ckpt_dtype load;          /* ... and the type it is loaded and quantized in */
};

/*
 * Converts `lines` lines from `src` (from-type) to `dst` (to-type).  `row0`
 * is the first line's row within its matrix, to find its fp8 scales.
 */
int transform_lines(const struct transform *t, const void *src, void *dst, uint64_t row0, uint64_t lines,
                    ckpt_cast_counts *counts, ckpt_error *err);

/*
 * A quantized linear's lines in its load type, as msModelSlim has them
 * before quantizing: fp8 weights block-dequantized to bf16 (in `stage` when
 * the load type is another, then cast), others cast.  *loaded is `src`
 * itself when nothing changes, else `load` (lines * line_elems of the load
 * type; `stage` the same count of bf16).
 */
int transform_load(const struct transform *t, const void *src, void *stage, void *load, uint64_t row0,
                   uint64_t lines, const void **loaded, ckpt_cast_counts *counts, ckpt_error *err);

/*
 * Quantizes loaded lines (quant.c): the weight's codes into `dst` and each
 * line's scale into `line_scales` (may be NULL), or for the scale tensor the
 * scales into `dst`.  A line holding a NaN or an infinity is CKPT_ERR_FORMAT,
 * its index in *bad_line (the caller names the tensor).
 */
int transform_quant(const struct transform *t, const void *loaded, void *dst, float *line_scales, uint64_t lines,
                    uint64_t *bad_line);

/*
 * Tiles a row-major [rows, cols] matrix into FRACTAL_NZ
 * [ceil(cols/C0), ceil(rows/16)*16, C0] with C0 elements a tile row,
 * zero-padded; with `transpose` the matrix is first transposed to [cols, rows].
 */
int transform_nz(const void *src, void *dst, uint64_t rows, uint64_t cols, ckpt_dtype dtype, uint64_t c0,
                 int transpose, ckpt_error *err);

/*
 * Tiles `rows` rows of a row-major matrix of `cols` elements a row, which
 * start at row `row0` (a multiple of 16) of a matrix of `matrix_rows` rows,
 * into the column blocks [j_begin, j_end) of that matrix's FRACTAL_NZ form,
 * held from column block j_begin on in `panel`: a panel of the stored matrix,
 * or all of it, filled one row block at a time.
 */
void transform_nz_rows(const void *src, void *panel, uint64_t row0, uint64_t rows, uint64_t matrix_rows,
                       uint64_t cols, ckpt_dtype dtype, uint64_t c0, uint64_t j_begin, uint64_t j_end);

#endif
