/*
 * quant.c: ckpt_quantize_int8, msModelSlim's data-free weight quantizer
 * ("minmax", per output channel, symmetric) done the way its torch code does
 * it for a weight in its load type; docs/quantization.md gives the order of
 * operations and the lines of msModelSlim it follows.  This file is the
 * portable reference and chooses the vectorised path (quant_x86.c) where
 * the CPU has one; the tests prove both give the same bytes as torch.
 *
 * Rows are independent: each is read twice, once for its range and scale,
 * once for its codes, so a caller can stream a weight by row blocks.
 */
#include "kernels.h"
#include "quant.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

/* One row of a 16- or 32-bit weight: false when it holds a NaN or an infinity. */
static bool row_float(ckpt_dtype dtype, const void *row, uint64_t cols, int8_t *q, float *scale)
{
    float lo = 0.0f, hi = 0.0f;
    for (uint64_t k = 0; k < cols; k++) {
        float v = quant_load(dtype, row, k);
        if (!isfinite(v))
            return false;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    float s = quant_scale(dtype, lo, hi);
    for (uint64_t k = 0; q && k < cols; k++)
        q[k] = quant_code(dtype, quant_load(dtype, row, k), s);
    *scale = s;
    return true;
}

/* One row of a float64 weight: the same steps in double. */
static bool row_double(const double *row, uint64_t cols, int8_t *q, float *scale)
{
    double lo = 0.0, hi = 0.0;
    for (uint64_t k = 0; k < cols; k++) {
        if (!isfinite(row[k]))
            return false;
        lo = row[k] < lo ? row[k] : lo;
        hi = row[k] > hi ? row[k] : hi;
    }
    double top = -lo > hi ? -lo : hi, s = top / 127.0;
    s = s < QUANT_EPS ? QUANT_EPS : s;
    for (uint64_t k = 0; q && k < cols; k++) {
        double c = nearbyint(row[k] / s);
        q[k] = (int8_t)(c < -128.0 ? -128.0 : c > 127.0 ? 127.0 : c);
    }
    *scale = (float)s;   /* the float64 scale as float32: how msModelSlim's saver stores it (.to(float32)) */
    return true;
}

bool quant_portable(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales,
                    uint64_t *bad_row)
{
    size_t esize = ckpt_dtype_size(dtype);
    const uint8_t *w = weight;
    for (uint64_t r = 0; r < rows; r++) {
        const void *row = w + r * cols * esize;
        int8_t *qrow = q ? q + r * cols : NULL;
        float s;
        bool ok = dtype == CKPT_DTYPE_F64 ? row_double(row, cols, qrow, &s) : row_float(dtype, row, cols, qrow, &s);
        if (!ok) {
            *bad_row = r;
            return false;
        }
        if (scales)
            scales[r] = s;
    }
    return true;
}

bool quant_rows(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q, float *scales,
                uint64_t *bad_row)
{
    bool ok;
    if (!quant_fast(dtype, weight, rows, cols, q, scales, &ok, bad_row))
        ok = quant_portable(dtype, weight, rows, cols, q, scales, bad_row);
    return ok;
}

int ckpt_quantize_int8(ckpt_dtype dtype, const void *weight, uint64_t rows, uint64_t cols, int8_t *q,
                       float *scales, ckpt_error *err)
{
    if (dtype != CKPT_DTYPE_F16 && dtype != CKPT_DTYPE_BF16 && dtype != CKPT_DTYPE_F32 && dtype != CKPT_DTYPE_F64)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "int8 quantization computes in F16, BF16, F32 or F64, not %s",
                         ckpt_dtype_name(dtype));
    uint64_t elems, bytes;
    if (!ckpt_mul_u64(rows, cols, &elems) || !ckpt_mul_u64(elems, ckpt_dtype_size(dtype), &bytes) ||
        bytes > SIZE_MAX)
        return ckpt_fail(err, CKPT_ERR_ARG, "weight [%llu, %llu] overflows the address space",
                         (unsigned long long)rows, (unsigned long long)cols);
    uint64_t bad_row = 0;
    if (!quant_rows(dtype, weight, rows, cols, q, scales, &bad_row))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "row %llu holds a NaN or an infinity, which no int8 scale represents",
                         (unsigned long long)bad_row);
    return CKPT_OK;
}
