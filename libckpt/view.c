/*
 * view.c: copying a tensor's rows out of its storage, whatever its strides
 * and byte order, into row-major little-endian bytes.
 */
#include "source.h"

#include <string.h>

/* Byte-reverses each `unit`-byte element of buf. */
static void swap_bytes(uint8_t *buf, uint64_t len, size_t unit)
{
    for (uint64_t i = 0; i + unit <= len; i += unit)
        for (size_t a = 0, b = unit - 1; a < b; a++, b--) {
            uint8_t t = buf[i + a];
            buf[i + a] = buf[i + b];
            buf[i + b] = t;
        }
}

/*
 * Gathers a strided block into dst, row-major.  `base` points at the block's
 * first element.  The innermost dimension is copied as one run when its stride
 * is 1, element by element otherwise.
 */
static void gather(const uint8_t *base, size_t esize, uint32_t rank, const uint64_t *shape,
                   const int64_t *strides, uint8_t *dst)
{
    uint64_t index[SOURCE_MAX_RANK] = {0};
    uint32_t last = rank - 1;
    uint64_t run_bytes = shape[last] * esize;
    uint64_t step = (uint64_t)strides[last] * esize;
    for (;;) {
        uint64_t off = 0;
        for (uint32_t d = 0; d < last; d++)
            off += index[d] * (uint64_t)strides[d];
        const uint8_t *p = base + off * esize;
        if (strides[last] == 1) {
            memcpy(dst, p, run_bytes);
            dst += run_bytes;
        } else {
            for (uint64_t k = 0; k < shape[last]; k++, p += step, dst += esize)
                memcpy(dst, p, esize);
        }
        /* advance the odometer over the outer dimensions */
        uint32_t d = last;
        for (;;) {
            if (d == 0)
                return;
            d--;
            if (++index[d] < shape[d])
                break;
            index[d] = 0;
        }
    }
}

int view_read_rows(const struct ckpt_source *src, const struct tensor_entry *t,
                   uint64_t row_begin, uint64_t row_count, uint8_t *dst, ckpt_error *err)
{
    (void)err;
    const ckpt_tensor *pub = &t->pub;
    size_t esize = ckpt_dtype_size(pub->dtype);
    uint64_t row_bytes = ckpt_tensor_row_bytes(pub);
    uint64_t len = row_count * row_bytes;
    if (len == 0)
        return CKPT_OK;
    const uint8_t *base = src->files[t->view.file].data + t->view.storage_offset
                          + t->view.elem_offset * esize;

    if (!t->strides)
        memcpy(dst, base + row_begin * row_bytes, len);
    else if (pub->rank == 0)
        memcpy(dst, base, esize);
    else {
        uint64_t shape[SOURCE_MAX_RANK];
        memcpy(shape, pub->shape, pub->rank * sizeof *shape);
        shape[0] = row_count;
        gather(base + row_begin * (uint64_t)t->strides[0] * esize, esize, pub->rank, shape, t->strides, dst);
    }

    if (t->view.big_endian && esize > 1)
        swap_bytes(dst, len, pub->dtype == CKPT_DTYPE_C64 ? 4 : esize);
    return CKPT_OK;
}
