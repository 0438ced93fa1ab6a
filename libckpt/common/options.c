/*
 * options.c: the one rule every public option struct follows, so that a
 * struct can grow a field at its end without breaking programs built
 * against an older header.
 */
#include "options.h"

#include "error.h"

#include <string.h>

int options_take(void *out, size_t out_size, const void *given, const char *what, ckpt_error *err)
{
    if (!given)
        return CKPT_OK;
    size_t size;
    memcpy(&size, given, sizeof size);
    if (size < sizeof size || size > out_size)
        return ckpt_fail(err, CKPT_ERR_ARG,
                         "%s of size %zu, this library knows %zu bytes: fill it with its _default() function first",
                         what, size, out_size);
    memcpy(out, given, size);
    memcpy(out, &out_size, sizeof out_size);
    return CKPT_OK;
}
