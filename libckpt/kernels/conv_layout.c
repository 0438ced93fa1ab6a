/*
 * conv_layout.c: the convolution layouts of Ascend, with inverses.
 *   NC1HWC0 ("5HD", feature maps): (N, C, H, W) -> (N, ceil(C/C0), H, W, C0)
 *   FRACTAL_Z (conv weights):      (N, C, H, W) -> (ceil(C/C0)*H*W, ceil(N/16), 16, C0)
 * C0 as for NZ (32 bytes of a row; 16 for 4-byte elements); padding is zero.
 * Not hot paths: plain loops over the destination.
 */
#include "kernels.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <string.h>

static int conv_dims(const uint64_t shape[4], size_t elem_size, uint64_t *c0, uint64_t *c1, uint64_t *bytes, bool z,
                     ckpt_error *err)
{
    if (elem_size != 1 && elem_size != 2 && elem_size != 4)
        return ckpt_fail(err, CKPT_ERR_ARG, "conv layouts need 1, 2 or 4-byte elements");
    *c0 = ckpt_nz_c0((unsigned)elem_size * 8);
    *c1 = shape[1] / *c0 + (shape[1] % *c0 != 0);
    *bytes = 0;
    if (!shape[0] || !shape[1] || !shape[2] || !shape[3])   /* empty, whatever the other extents */
        return CKPT_OK;
    uint64_t n = z ? (shape[0] + 15) / 16 * 16 : shape[0], count;
    if (!ckpt_product_u64((uint64_t[]){n, *c1, shape[2], shape[3], *c0}, 5, &count) ||
        !ckpt_mul_u64(count, elem_size, bytes))
        return ckpt_fail(err, CKPT_ERR_ARG, "conv layout size overflows");
    return CKPT_OK;
}

/* Destination element index of (n, c, h, w) in NC1HWC0 or FRACTAL_Z. */
static uint64_t conv_index(const uint64_t s[4], uint64_t c0, uint64_t c1, bool z, uint64_t n, uint64_t c, uint64_t h,
                           uint64_t w)
{
    if (!z)
        return (((n * c1 + c / c0) * s[2] + h) * s[3] + w) * c0 + c % c0;
    uint64_t n1 = (s[0] + 15) / 16;
    return (((c / c0) * s[2] * s[3] + h * s[3] + w) * n1 + n / 16) * 16 * c0 + (n % 16) * c0 + c % c0;
}

static int conv_apply(const void *src, void *dst, const uint64_t shape[4], size_t es, bool z, bool forward,
                      ckpt_error *err)
{
    uint64_t c0, c1, bytes;
    int rc = conv_dims(shape, es, &c0, &c1, &bytes, z, err);
    if (rc || bytes == 0)   /* no bytes: some extent is zero, there is nothing to move */
        return rc;
    if (forward)
        memset(dst, 0, bytes);
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (uint64_t n = 0; n < shape[0]; n++)
        for (uint64_t c = 0; c < shape[1]; c++)
            for (uint64_t h = 0; h < shape[2]; h++)
                for (uint64_t w = 0; w < shape[3]; w++) {
                    uint64_t nd = ((n * shape[1] + c) * shape[2] + h) * shape[3] + w;
                    uint64_t tiled = conv_index(shape, c0, c1, z, n, c, h, w);
                    if (forward)
                        memcpy(d + tiled * es, s + nd * es, es);
                    else
                        memcpy(d + nd * es, s + tiled * es, es);
                }
    return CKPT_OK;
}

uint64_t ckpt_conv_layout_bytes(const uint64_t nchw[4], size_t elem_size, int fractal_z)
{
    uint64_t c0, c1, bytes;
    return conv_dims(nchw, elem_size, &c0, &c1, &bytes, fractal_z, NULL) ? 0 : bytes;
}

int ckpt_nchw_to_nc1hwc0(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size, ckpt_error *err)
{
    return conv_apply(src, dst, nchw, elem_size, false, true, err);
}

int ckpt_nc1hwc0_to_nchw(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size, ckpt_error *err)
{
    return conv_apply(src, dst, nchw, elem_size, false, false, err);
}

int ckpt_conv_to_fractal_z(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size, ckpt_error *err)
{
    return conv_apply(src, dst, nchw, elem_size, true, true, err);
}

int ckpt_fractal_z_to_conv(const void *src, void *dst, const uint64_t nchw[4], size_t elem_size, ckpt_error *err)
{
    return conv_apply(src, dst, nchw, elem_size, true, false, err);
}
