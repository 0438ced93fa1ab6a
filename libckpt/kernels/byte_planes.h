/*
 * byte_planes.h: floating-point elements split into byte planes and back, so
 * that a general-purpose compressor sees all the exponents together.
 *
 * Each element of `width` bytes (2, 4 or 8), read little-endian, is rotated
 * left by one bit, which moves the sign to the lowest bit and puts the
 * exponent in the top byte (exactly, for BF16 and F32).  Plane 0 then holds
 * every element's top byte, plane 1 the next byte down, and so on: `count`
 * elements become `width` planes of `count` bytes, one after the other.  An
 * exponent plane of weights drawn from a bell curve holds a few distinct
 * values and entropy-codes to under 3 bits; the planes below are close to
 * random and are left alone by the compressor.
 */
#ifndef CKPT_BYTE_PLANES_H
#define CKPT_BYTE_PLANES_H

#include <stddef.h>
#include <stdint.h>

/* Splits `count` elements of `width` bytes from src into planes at dst (count * width bytes each). */
void planes_split(const uint8_t *src, uint8_t *dst, size_t count, unsigned width);

/* The inverse: planes at src back into `count` little-endian elements at dst. */
void planes_join(const uint8_t *src, uint8_t *dst, size_t count, unsigned width);

#endif
