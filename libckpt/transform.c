/* transform.c: TEMPORARY scalar stand-in until the kernels land. */
#include "transform.h"

#include "error.h"

#include <string.h>

static float load(ckpt_dtype d, const uint8_t *p)
{
    float f;
    uint16_t h;
    switch (d) {
    case CKPT_DTYPE_F32: memcpy(&f, p, 4); return f;
    case CKPT_DTYPE_BF16: { memcpy(&h, p, 2); uint32_t b = (uint32_t)h << 16; memcpy(&f, &b, 4); return f; }
    case CKPT_DTYPE_F16: { _Float16 x; memcpy(&x, p, 2); return (float)x; }
    default: return 0;
    }
}

static void store(ckpt_dtype d, uint8_t *p, float f)
{
    switch (d) {
    case CKPT_DTYPE_F32: memcpy(p, &f, 4); break;
    case CKPT_DTYPE_F16: { _Float16 x = (_Float16)f; memcpy(p, &x, 2); break; }
    case CKPT_DTYPE_BF16: { uint32_t b; memcpy(&b, &f, 4); b += 0x7fff + ((b >> 16) & 1); uint16_t h = (uint16_t)(b >> 16); memcpy(p, &h, 2); break; }
    default: break;
    }
}

int transform_lines(const struct transform *t, const void *src, void *dst, uint64_t row0, uint64_t lines,
                    ckpt_cast_counts *counts, ckpt_error *err)
{
    (void)row0; (void)counts; (void)err;
    size_t si = ckpt_dtype_size(t->from), so = ckpt_dtype_size(t->to);
    for (uint64_t i = 0; i < lines * t->line_elems; i++)
        store(t->to, (uint8_t *)dst + i * so, load(t->from, (const uint8_t *)src + i * si));
    return CKPT_OK;
}

int transform_nz(const void *src, void *dst, uint64_t rows, uint64_t cols, ckpt_dtype dtype, int transpose,
                 ckpt_error *err)
{
    (void)err;
    size_t es = ckpt_dtype_size(dtype);
    uint64_t m = transpose ? cols : rows, n = transpose ? rows : cols;
    uint64_t c0 = es == 4 ? 16 : 32 / es, n1 = (n + c0 - 1) / c0, mp = (m + 15) / 16 * 16;
    memset(dst, 0, n1 * mp * c0 * es);
    for (uint64_t r = 0; r < m; r++)
        for (uint64_t c = 0; c < n; c++) {
            uint64_t s = transpose ? c * cols + r : r * cols + c;
            memcpy((uint8_t *)dst + ((c / c0) * mp * c0 + r * c0 + c % c0) * es, (const uint8_t *)src + s * es, es);
        }
    return CKPT_OK;
}
