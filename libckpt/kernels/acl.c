/* acl.c: see acl.h. */
#include "acl.h"

#include <stddef.h>

int acl_dtype_of(ckpt_dtype dtype, const char **name)
{
    static const struct {
        ckpt_dtype dtype;
        int code;
        const char *name;
    } codes[] = {
        {CKPT_DTYPE_F32, 0, "ACL_FLOAT"},       {CKPT_DTYPE_F16, 1, "ACL_FLOAT16"},
        {CKPT_DTYPE_I8, 2, "ACL_INT8"},         {CKPT_DTYPE_I32, 3, "ACL_INT32"},
        {CKPT_DTYPE_U8, 4, "ACL_UINT8"},        {CKPT_DTYPE_I16, 6, "ACL_INT16"},
        {CKPT_DTYPE_U16, 7, "ACL_UINT16"},      {CKPT_DTYPE_U32, 8, "ACL_UINT32"},
        {CKPT_DTYPE_I64, 9, "ACL_INT64"},       {CKPT_DTYPE_U64, 10, "ACL_UINT64"},
        {CKPT_DTYPE_F64, 11, "ACL_DOUBLE"},     {CKPT_DTYPE_BOOL, 12, "ACL_BOOL"},
        {CKPT_DTYPE_C64, 16, "ACL_COMPLEX64"},  {CKPT_DTYPE_BF16, 27, "ACL_BF16"},
        {CKPT_DTYPE_F8_E5M2, 35, "ACL_FLOAT8_E5M2"}, {CKPT_DTYPE_F8_E4M3, 36, "ACL_FLOAT8_E4M3FN"},
        {CKPT_DTYPE_F8_E8M0, 37, "ACL_FLOAT8_E8M0"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (codes[i].dtype == dtype) {
            if (name)
                *name = codes[i].name;
            return codes[i].code;
        }
    }
    if (name)
        *name = NULL;
    return -1;
}
