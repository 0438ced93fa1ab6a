/*
 * fp8.c: block-scaled fp8 weights (DeepSeek-V3 style) dequantized exactly as
 * torch computes `(w.float() * scale_of_its_block).to(dtype)`: the fp8
 * value is exact in float, the product is one IEEE float multiplication, and
 * the narrowing is ckpt_cast's.
 *
 * Rows are independent, so a caller streams a weight by row ranges (`row0`
 * says where the range starts, to find its scales).  Each row is handled in
 * chunks of ROW_CHUNK products, each chunk walked block by block so that the
 * scale is looked up once per block rather than divided out per element.
 */
#include "kernels.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#define ROW_CHUNK 4096   /* floats converted per ckpt_cast call: 16 KiB, stays in L1/L2 */

int ckpt_fp8_dequant(ckpt_dtype weight_dtype, const void *weight, uint64_t rows, uint64_t cols, uint64_t row0,
                     const float *scales, uint64_t scale_rows, uint64_t scale_cols, uint64_t block_rows,
                     uint64_t block_cols, ckpt_dtype to, void *dst, ckpt_overflow overflow, ckpt_cast_counts *counts,
                     ckpt_error *err)
{
    if ((weight_dtype != CKPT_DTYPE_F8_E4M3 && weight_dtype != CKPT_DTYPE_F8_E5M2) || !block_rows || !block_cols)
        return ckpt_fail(err, CKPT_ERR_ARG, "fp8 dequantization needs an F8 weight and positive block sizes");
    size_t out_size = ckpt_dtype_size(to);
    uint64_t elems, out_bytes, last_row;
    if (!ckpt_mul_u64(rows, cols, &elems) || !ckpt_mul_u64(elems, out_size, &out_bytes) || out_bytes > SIZE_MAX)
        return ckpt_fail(err, CKPT_ERR_ARG, "fp8 weight [%llu, %llu] overflows the address space",
                         (unsigned long long)rows, (unsigned long long)cols);
    if (!elems)
        return CKPT_OK;
    if (!ckpt_add_u64(row0, rows - 1, &last_row) || last_row / block_rows >= scale_rows ||
        (cols - 1) / block_cols >= scale_cols)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "fp8 scales [%llu, %llu] do not cover the weight's blocks",
                         (unsigned long long)scale_rows, (unsigned long long)scale_cols);
    /* the 256 fp8 codes as floats, by the reference cast: 256 values, cheaper than any branch per element */
    uint8_t codes[256];
    float table[256], chunk[ROW_CHUNK];
    for (int c = 0; c < 256; c++)
        codes[c] = (uint8_t)c;
    int rc = cast_portable(weight_dtype, codes, CKPT_DTYPE_F32, table, 256, CKPT_OVERFLOW_INF, NULL, err);
    const uint8_t *w = weight;
    uint8_t *out = dst;
    for (uint64_t r = 0; r < rows && !rc; r++) {
        const uint8_t *wrow = w + r * cols;
        const float *srow = scales + (row0 + r) / block_rows * scale_cols;
        for (uint64_t c0 = 0; c0 < cols && !rc; c0 += ROW_CHUNK) {
            uint64_t n = cols - c0 < ROW_CHUNK ? cols - c0 : ROW_CHUNK;
            for (uint64_t k = 0; k < n;) {
                uint64_t col = c0 + k, left_in_block = block_cols - col % block_cols;
                uint64_t end = n - k < left_in_block ? n : k + left_in_block;
                float s = srow[col / block_cols];
                for (; k < end; k++)
                    chunk[k] = table[wrow[c0 + k]] * s;
            }
            rc = ckpt_cast(CKPT_DTYPE_F32, chunk, to, out + (r * cols + c0) * out_size, n, overflow, counts, err);
        }
    }
    return rc;
}
