/*
 * decode.h: element values as doubles, for error measurements in verify and
 * diff.  Exact for every type but 64-bit integers beyond 2^53, which is
 * fine for measuring errors; equality is always decided on bits first.
 */
#ifndef CKPT_DECODE_H
#define CKPT_DECODE_H

#include "ckpt.h"

#include <stdbool.h>

/* Decodes `count` little-endian elements of `dtype` into `out`. */
void decode_f64(ckpt_dtype dtype, const void *src, double *out, uint64_t count);

/* Accumulates the largest |b - a| and |b - a| / |a| (a != 0, both finite) into *abs and *rel. */
void error_update(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err);

/* Accumulates the energy of the a's into *signal and of the differences b - a into *noise (finite pairs). */
void energy_update(const double *a, const double *b, uint64_t count, double *signal, double *noise);

/* decode_f64 and error_update with AVX2 and F16C (decode_x86.c): false, having done nothing, when they cannot. */
bool decode_f64_fast(ckpt_dtype dtype, const void *src, double *out, uint64_t count);
bool error_update_fast(const double *a, const double *b, uint64_t count, double *abs_err, double *rel_err);

/* The signal-to-noise ratio 10 log10(signal / noise) in dB: INFINITY without noise, -INFINITY without signal. */
double sqnr_db(double signal, double noise);

#endif
