/*
 * decode.h: element values as doubles, for error measurements in verify and
 * diff.  Exact for every type but 64-bit integers beyond 2^53, which is
 * fine for measuring errors; equality is always decided on bits first.
 */
#ifndef CKPT_DECODE_H
#define CKPT_DECODE_H

#include "ckpt.h"

/* Decodes `count` little-endian elements of `dtype` into `out`. */
void decode_f64(ckpt_dtype dtype, const void *src, double *out, uint64_t count);

/* Accumulates the largest |b - a| and |b - a| / |a| (a != 0, both finite) into *abs and *rel. */
void error_update(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err);

#endif
