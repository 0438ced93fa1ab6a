/*
 * view.c: copying elements out of a tensor's storage, whatever its strides
 * and byte order, into row-major little-endian bytes.
 *
 * Reads are expressed in "lines": rows of the last dimension, counting over
 * all leading dimensions (a [B, M, N] tensor has B*M lines of N elements).
 * That is the unit convert streams in; ckpt_source_read's rows of the first
 * dimension are whole runs of lines.  A rank-1 tensor has one line per
 * element, so that long vectors stream too.
 */
#include "source.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Reads at least this large give their pages back after copying. */
#define RELEASE_MIN_BYTES ((uint64_t)1 << 20)

/*
 * Drops the pages wholly inside [p, p + len) from this process's mapping.
 * They stay in the page cache, so a later read costs a page fault, not I/O;
 * without this, streaming a checkpoint through its mapping would make the
 * resident set grow to the whole checkpoint.  Only whole pages are dropped:
 * another tensor may share the pages at either end.
 */
void source_release_pages(const uint8_t *p, uint64_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(page - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}

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
 * Gathers `count` lines starting at line `first` of a strided view.  The
 * innermost dimension is copied as one run when its stride is 1, element by
 * element otherwise; an odometer walks the leading dimensions.
 */
static void gather_lines(const uint8_t *base, size_t esize, uint32_t rank, const uint64_t *shape,
                         const int64_t *strides, uint64_t first, uint64_t count, uint8_t *dst)
{
    uint64_t index[SOURCE_MAX_RANK] = {0};
    uint32_t last = rank - 1;
    for (uint32_t d = last; d-- > 0;) {
        index[d] = first % shape[d];
        first /= shape[d];
    }
    uint64_t run_bytes = shape[last] * esize;
    uint64_t step = (uint64_t)strides[last] * esize;
    for (uint64_t line = 0; line < count; line++) {
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
        for (uint32_t d = last; d-- > 0;) {
            if (++index[d] < shape[d])
                break;
            index[d] = 0;
        }
    }
}

uint64_t view_line_count(const ckpt_tensor *t)
{
    if (t->rank <= 1)
        return t->rank ? t->shape[0] : 1;
    uint64_t lines = 1;
    for (uint32_t d = 0; d + 1 < t->rank; d++)
        lines *= t->shape[d];
    return t->shape[t->rank - 1] == 0 ? 0 : lines;
}

uint64_t view_line_bytes(const ckpt_tensor *t)
{
    return (t->rank >= 2 ? t->shape[t->rank - 1] : 1) * ckpt_dtype_size(t->dtype);
}

/* Gives back the pages of a contiguous view's lines once they are copied (large reads only). */
static void release_lines(const struct ckpt_source *src, const struct tensor_entry *t, uint64_t first,
                          uint64_t count)
{
    uint64_t line_bytes = view_line_bytes(&t->pub), len = count * line_bytes;
    if (t->strides || !src->files[t->view.file].mapped || len < RELEASE_MIN_BYTES)
        return;
    source_release_pages(src->files[t->view.file].data + t->view.storage_offset +
                         t->view.elem_offset * ckpt_dtype_size(t->pub.dtype) + first * line_bytes, len);
}

/* Reads lines of a tensor held by one view. */
static int read_view_lines(const struct ckpt_source *src, const struct tensor_entry *t, uint64_t first,
                           uint64_t count, uint8_t *dst)
{
    const ckpt_tensor *pub = &t->pub;
    size_t esize = ckpt_dtype_size(pub->dtype);
    uint64_t line_bytes = view_line_bytes(pub);
    uint64_t len = count * line_bytes;
    if (len == 0)
        return CKPT_OK;
    const uint8_t *base = src->files[t->view.file].data + t->view.storage_offset + t->view.elem_offset * esize;

    if (!t->strides) {
        memcpy(dst, base + first * line_bytes, len);
        release_lines(src, t, first, count);
    }
    else if (pub->rank == 0)
        memcpy(dst, base, esize);
    else if (pub->rank == 1)
        gather_lines(base + first * (uint64_t)t->strides[0] * esize, esize, 2, (uint64_t[]){count, 1},
                     (int64_t[]){t->strides[0], 1}, 0, count, dst);
    else
        gather_lines(base, esize, pub->rank, pub->shape, t->strides, first, count, dst);

    if (t->view.big_endian && esize > 1)
        swap_bytes(dst, len, pub->dtype == CKPT_DTYPE_C64 ? 4 : esize);
    return CKPT_OK;
}

/*
 * Copies the lines of one piece that fall in [first, first + count) of the
 * whole tensor into place.  A piece's lines with the same indices in all but
 * the last two dimensions are consecutive in the whole tensor too; each such
 * run is read at once when the piece spans whole lines, line by line (into
 * its columns) otherwise.
 */
static void read_part_lines(const struct ckpt_source *src, const struct tensor_entry *whole,
                            const struct tensor_part *part, uint64_t first, uint64_t count, uint8_t *dst)
{
    const struct tensor_entry *p = &part->entry;
    uint32_t rank = whole->pub.rank;
    size_t esize = ckpt_dtype_size(whole->pub.dtype);
    uint64_t line_bytes = view_line_bytes(&whole->pub), end = first + count;
    if (rank <= 1) {   /* one element a line: the piece is one run of lines */
        uint64_t at = rank ? part->offsets[0] : 0, n = rank ? p->shape[0] : 1;
        uint64_t lo = at > first ? at : first, hi = at + n < end ? at + n : end;
        if (lo < hi)
            read_view_lines(src, p, lo - at, hi - lo, dst + (lo - first) * esize);
        return;
    }
    uint32_t row_dim = rank - 2;   /* lines of a run differ only in this index */
    uint64_t run_lines = p->shape[row_dim], runs = 1;
    for (uint32_t d = 0; d < row_dim; d++)
        runs *= p->shape[d];
    bool whole_lines = p->shape[rank - 1] == whole->shape[rank - 1];
    uint64_t column = part->offsets[rank - 1] * esize;
    uint64_t index[SOURCE_MAX_RANK] = {0};   /* the run's index in the piece, dimensions before row_dim */
    for (uint64_t r = 0; r < runs; r++) {
        uint64_t line = 0;   /* the run's first line in the whole tensor */
        for (uint32_t d = 0; d <= row_dim; d++)
            line = line * whole->shape[d] + part->offsets[d] + (d < row_dim ? index[d] : 0);
        if (line >= end)
            break;   /* runs come in increasing line order */
        uint64_t lo = line > first ? line : first, hi = line + run_lines < end ? line + run_lines : end;
        uint64_t local = r * run_lines + (lo - line);
        if (lo < hi && whole_lines) {
            read_view_lines(src, p, local, hi - lo, dst + (lo - first) * line_bytes);
        } else if (lo < hi) {
            for (uint64_t l = lo; l < hi; l++)
                read_view_lines(src, p, local + (l - lo), 1, dst + (l - first) * line_bytes + column);
            release_lines(src, p, local, hi - lo);
        }
        for (uint32_t d = row_dim; d-- > 0;) {
            if (++index[d] < p->shape[d])
                break;
            index[d] = 0;
        }
    }
}

int view_read_lines(const struct ckpt_source *src, const struct tensor_entry *t, uint64_t first, uint64_t count,
                    uint8_t *dst, ckpt_error *err)
{
    (void)err;
    if (!t->parts)
        return read_view_lines(src, t, first, count, dst);
    for (size_t i = 0; i < t->part_count; i++)
        if (t->parts[i].entry.pub.nbytes)
            read_part_lines(src, t, &t->parts[i], first, count, dst);
    return CKPT_OK;
}
