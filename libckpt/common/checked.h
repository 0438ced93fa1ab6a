/* checked.h: arithmetic on sizes read from files, with overflow reported, never wrapped. */
#ifndef CKPT_CHECKED_H
#define CKPT_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns true when the exact result fits in *out. */
static inline bool ckpt_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool ckpt_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Product of `n` extents; true when it fits.  The empty product is 1. */
static inline bool ckpt_product_u64(const uint64_t *v, uint32_t n, uint64_t *out)
{
    uint64_t p = 1;
    for (uint32_t i = 0; i < n; i++)
        if (!ckpt_mul_u64(p, v[i], &p))
            return false;
    *out = p;
    return true;
}

static inline uint64_t ckpt_load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint32_t ckpt_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint16_t ckpt_load_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

#endif
