/* error.h: filling a caller's ckpt_error. */
#ifndef CKPT_ERROR_H
#define CKPT_ERROR_H

#include "ckpt.h"

#if defined(__GNUC__)
#define CKPT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CKPT_PRINTF(f, a)
#endif

/*
 * Records `code` and a formatted one-line message in `err` (which may be
 * NULL) and returns `code`, so that a failure reads `return ckpt_fail(...)`.
 */
int ckpt_fail(ckpt_error *err, int code, const char *fmt, ...) CKPT_PRINTF(3, 4);

/* Clears `err` (which may be NULL) to CKPT_OK and an empty message. */
void ckpt_error_clear(ckpt_error *err);

#endif
