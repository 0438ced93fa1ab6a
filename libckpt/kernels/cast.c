/*
 * cast.c: ckpt_cast, which takes the vectorised path (cast_x86.c) where this
 * CPU and this pair of types have one, and the portable reference
 * (cast_portable.c, which says what the conversion is) otherwise.
 */
#include "kernels.h"

#include "libckpt/common/error.h"

#include <string.h>

int ckpt_cast(ckpt_dtype from, const void *src, ckpt_dtype to, void *dst, size_t count_elems, ckpt_overflow overflow,
              ckpt_cast_counts *counts, ckpt_error *err)
{
    size_t bytes;
    if (__builtin_mul_overflow(count_elems, ckpt_dtype_size(from), &bytes))
        return ckpt_fail(err, CKPT_ERR_ARG, "%zu %s elements overflow the address space", count_elems,
                         ckpt_dtype_name(from));
    if (from == to && ckpt_dtype_size(from)) {
        memmove(dst, src, bytes);
        return CKPT_OK;
    }
    ckpt_cast_counts local = {0, 0, 0};
    if (cast_fast(from, src, to, dst, count_elems, overflow, &local)) {
        if (counts) {
            counts->overflowed += local.overflowed;
            counts->subnormal += local.subnormal;
            counts->flushed += local.flushed;
        }
        if (overflow == CKPT_OVERFLOW_ERROR && local.overflowed)
            return ckpt_fail(err, CKPT_ERR_LIMIT, "%llu values overflow %s", (unsigned long long)local.overflowed,
                             ckpt_dtype_name(to));
        return CKPT_OK;
    }
    return cast_portable(from, src, to, dst, count_elems, overflow, counts, err);
}
