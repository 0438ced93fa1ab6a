/* transform.c: the sink's block operations, in terms of the kernels. */
#include "transform.h"

#include "kernels.h"

#include "libckpt/common/error.h"

int transform_lines(const struct transform *t, const void *src, void *dst, uint64_t row0, uint64_t lines,
                    ckpt_cast_counts *counts, ckpt_error *err)
{
    if (t->scales)
        return ckpt_fp8_dequant(t->from, src, lines, t->line_elems, row0, t->scales, t->scale_rows, t->scale_cols,
                                t->block_rows, t->block_cols, t->to, dst, t->overflow, counts, err);
    return ckpt_cast(t->from, src, t->to, dst, lines * t->line_elems, t->overflow, counts, err);
}

int transform_load(const struct transform *t, const void *src, void *stage, void *load, uint64_t row0,
                   uint64_t lines, const void **loaded, ckpt_cast_counts *counts, ckpt_error *err)
{
    uint64_t elems = lines * t->line_elems;
    *loaded = src;
    if (!t->scales && t->from == t->load)
        return CKPT_OK;
    *loaded = load;
    if (!t->scales)
        return ckpt_cast(t->from, src, t->load, load, elems, t->overflow, counts, err);
    void *bf16 = t->load == CKPT_DTYPE_BF16 ? load : stage;
    int rc = ckpt_fp8_dequant(t->from, src, lines, t->line_elems, row0, t->scales, t->scale_rows, t->scale_cols,
                              t->block_rows, t->block_cols, CKPT_DTYPE_BF16, bf16, t->overflow, counts, err);
    if (!rc && bf16 != load)
        rc = ckpt_cast(CKPT_DTYPE_BF16, bf16, t->load, load, elems, t->overflow, counts, err);
    return rc;
}

int transform_quant(const struct transform *t, const void *loaded, void *dst, float *line_scales, uint64_t lines,
                    uint64_t *bad_line)
{
    bool weight = t->role == CKPT_QUANT_ROLE_WEIGHT;
    return quant_rows(t->load, loaded, lines, t->line_elems, weight ? dst : NULL, weight ? line_scales : dst,
                      bad_line)
               ? CKPT_OK
               : CKPT_ERR_FORMAT;
}

int transform_nz(const void *src, void *dst, uint64_t rows, uint64_t cols, ckpt_dtype dtype, uint64_t c0,
                 int transpose, ckpt_error *err)
{
    return nz_convert(src, dst, (uint64_t[]){rows, cols}, 2, (unsigned)ckpt_dtype_size(dtype) * 8, c0, transpose, true,
                      err);
}

void transform_nz_rows(const void *src, void *panel, uint64_t row0, uint64_t rows, uint64_t matrix_rows,
                       uint64_t cols, ckpt_dtype dtype, uint64_t c0, uint64_t j_begin, uint64_t j_end)
{
    uint64_t es = ckpt_dtype_size(dtype);
    struct nz_block b = {rows, cols * es, c0 * es, (matrix_rows + 15) / 16 * 16, j_begin, j_end};
    nz_tile_block(src, (uint8_t *)panel + row0 * c0 * es, &b);
}
