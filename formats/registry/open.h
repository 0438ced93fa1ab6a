/* open.h: taking the caller's ckpt_open_options, for every public call that opens a source. */
#ifndef CKPT_REGISTRY_OPEN_H
#define CKPT_REGISTRY_OPEN_H

#include "ckpt.h"

/*
 * Fills `out` with the defaults, then the caller's `given` (NULL: the
 * defaults) as far as its `size` (and its limits' own `size`) says, and
 * checks the choices; CKPT_ERR_ARG for an unknown size or choice.
 */
int open_options_take(ckpt_open_options *out, const ckpt_open_options *given, ckpt_error *err);

/* The same for ckpt_limits alone. */
int limits_take(ckpt_limits *out, const ckpt_limits *given, ckpt_error *err);

#endif
