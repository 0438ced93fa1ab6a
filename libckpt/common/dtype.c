/* dtype.c: element types, their sizes and safetensors names. */
#include "ckpt.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[CKPT_DTYPE_COUNT] = {
    [CKPT_DTYPE_INVALID] = {"INVALID", 0},
    [CKPT_DTYPE_BOOL] = {"BOOL", 1},
    [CKPT_DTYPE_U8] = {"U8", 1},
    [CKPT_DTYPE_I8] = {"I8", 1},
    [CKPT_DTYPE_I16] = {"I16", 2},
    [CKPT_DTYPE_U16] = {"U16", 2},
    [CKPT_DTYPE_F16] = {"F16", 2},
    [CKPT_DTYPE_BF16] = {"BF16", 2},
    [CKPT_DTYPE_I32] = {"I32", 4},
    [CKPT_DTYPE_U32] = {"U32", 4},
    [CKPT_DTYPE_F32] = {"F32", 4},
    [CKPT_DTYPE_F64] = {"F64", 8},
    [CKPT_DTYPE_I64] = {"I64", 8},
    [CKPT_DTYPE_U64] = {"U64", 8},
    [CKPT_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [CKPT_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
    [CKPT_DTYPE_F8_E8M0] = {"F8_E8M0", 1},
    [CKPT_DTYPE_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 1},
    [CKPT_DTYPE_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 1},
    [CKPT_DTYPE_C64] = {"C64", 8},
};

size_t ckpt_dtype_size(ckpt_dtype dtype)
{
    if ((unsigned)dtype >= CKPT_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

const char *ckpt_dtype_name(ckpt_dtype dtype)
{
    if ((unsigned)dtype >= CKPT_DTYPE_COUNT)
        return dtype_table[CKPT_DTYPE_INVALID].name;
    return dtype_table[dtype].name;
}

ckpt_dtype ckpt_dtype_from_name(const char *name)
{
    for (int d = CKPT_DTYPE_INVALID + 1; d < CKPT_DTYPE_COUNT; d++)
        if (strcmp(dtype_table[d].name, name) == 0)
            return (ckpt_dtype)d;
    return CKPT_DTYPE_INVALID;
}
