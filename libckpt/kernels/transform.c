/* transform.c: execute.c's block operations, in terms of the kernels. */
#include "transform.h"

int transform_lines(const struct transform *t, const void *src, void *dst, uint64_t row0, uint64_t lines,
                    ckpt_cast_counts *counts, ckpt_error *err)
{
    if (t->scales)
        return ckpt_fp8_dequant(t->from, src, lines, t->line_elems, row0, t->scales, t->scale_rows, t->scale_cols,
                                t->block_rows, t->block_cols, t->to, dst, t->overflow, counts, err);
    return ckpt_cast(t->from, src, t->to, dst, lines * t->line_elems, t->overflow, counts, err);
}

int transform_nz(const void *src, void *dst, uint64_t rows, uint64_t cols, ckpt_dtype dtype, int transpose,
                 ckpt_error *err)
{
    return ckpt_nd_to_nz(src, dst, (uint64_t[]){rows, cols}, 2, (unsigned)ckpt_dtype_size(dtype) * 8, transpose, err);
}
