/*
 * byte_planes.c: see byte_planes.h.  Rotating a little-endian element left
 * by one bit makes each of its bytes from two neighbours: byte b of the
 * rotated element is (byte b << 1) | (byte b-1 >> 7), byte 0 taking the
 * top bit of the last byte (the sign).  The 2- and 4-byte loops are spelt
 * out bytewise so that they vectorise (byte_planes.o is built with
 * -ftree-vectorize); 8-byte elements (F64, rare in checkpoints) take the
 * general loop.
 */
#include "byte_planes.h"

static void split2(const uint8_t *restrict src, uint8_t *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b0 = src[2 * i], b1 = src[2 * i + 1];
        dst[i] = (uint8_t)(b1 << 1 | b0 >> 7);
        dst[n + i] = (uint8_t)(b0 << 1 | b1 >> 7);
    }
}

static void join2(const uint8_t *restrict src, uint8_t *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t top = src[i], low = src[n + i];
        dst[2 * i] = (uint8_t)(low >> 1 | top << 7);
        dst[2 * i + 1] = (uint8_t)(top >> 1 | low << 7);
    }
}

static void split4(const uint8_t *restrict src, uint8_t *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b0 = src[4 * i], b1 = src[4 * i + 1], b2 = src[4 * i + 2], b3 = src[4 * i + 3];
        dst[i] = (uint8_t)(b3 << 1 | b2 >> 7);
        dst[n + i] = (uint8_t)(b2 << 1 | b1 >> 7);
        dst[2 * n + i] = (uint8_t)(b1 << 1 | b0 >> 7);
        dst[3 * n + i] = (uint8_t)(b0 << 1 | b3 >> 7);
    }
}

static void join4(const uint8_t *restrict src, uint8_t *restrict dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t p0 = src[i], p1 = src[n + i], p2 = src[2 * n + i], p3 = src[3 * n + i];
        dst[4 * i] = (uint8_t)(p3 >> 1 | p2 << 7);
        dst[4 * i + 1] = (uint8_t)(p2 >> 1 | p1 << 7);
        dst[4 * i + 2] = (uint8_t)(p1 >> 1 | p0 << 7);
        dst[4 * i + 3] = (uint8_t)(p0 >> 1 | p3 << 7);
    }
}

static void split_any(const uint8_t *src, uint8_t *dst, size_t n, unsigned width)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = src + (size_t)width * i;
        for (unsigned p = 0; p < width; p++) {
            unsigned b = width - 1 - p, below = b ? b - 1 : width - 1;
            dst[p * n + i] = (uint8_t)(e[b] << 1 | e[below] >> 7);
        }
    }
}

static void join_any(const uint8_t *src, uint8_t *dst, size_t n, unsigned width)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *e = dst + (size_t)width * i;
        for (unsigned b = 0; b < width; b++) {
            /* byte b's bits 6..0 are in plane width-1-b, its top bit is the low bit of the plane above */
            unsigned p = width - 1 - b, above = p ? p - 1 : width - 1;
            e[b] = (uint8_t)(src[p * n + i] >> 1 | src[above * n + i] << 7);
        }
    }
}

void planes_split(const uint8_t *src, uint8_t *dst, size_t count, unsigned width)
{
    if (width == 2)
        split2(src, dst, count);
    else if (width == 4)
        split4(src, dst, count);
    else
        split_any(src, dst, count, width);
}

void planes_join(const uint8_t *src, uint8_t *dst, size_t count, unsigned width)
{
    if (width == 2)
        join2(src, dst, count);
    else if (width == 4)
        join4(src, dst, count);
    else
        join_any(src, dst, count, width);
}
