/* options.h: taking a caller's option struct that starts with `size_t size`, of this or an older version. */
#ifndef CKPT_OPTIONS_H
#define CKPT_OPTIONS_H

#include "ckpt.h"

#include <stddef.h>

/*
 * Copies the first `given->size` bytes of the caller's struct over `out`,
 * which holds this version's defaults and is `out_size` bytes, so that the
 * fields an older caller does not know keep their defaults; `out`'s size
 * becomes out_size.  A size smaller than the size field itself, or larger
 * than this version's struct (a newer header), is refused with CKPT_ERR_ARG
 * naming `what`.  `given` NULL leaves the defaults.
 */
int options_take(void *out, size_t out_size, const void *given, const char *what, ckpt_error *err);

#endif
