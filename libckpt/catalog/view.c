/*
 * view.c: copying elements out of a tensor's storage, whatever its strides
 * and byte order, into row-major little-endian bytes.
 *
 * Reads are expressed in "lines": rows of the last dimension, counting over
 * all leading dimensions (a [B, M, N] tensor has B*M lines of N elements).
 * That is the unit convert streams in; ckpt_source_read's rows of the first
 * dimension are whole runs of lines.  A rank-1 tensor has one line per
 * element, so that long vectors stream too.
 *
 * Contiguous data of a file on disk is read with pread, not through the
 * mapping: a file truncated while it is read then gives a short read, an
 * error naming the file and the tensor, where the mapping would raise
 * SIGBUS.  Strided views are read the same way: a transposed matrix column
 * run by column run, others as the storage span a block of lines touches,
 * into a buffer of at most 32 MiB (a block spanning more is halved until
 * each half fits, a single line into runs of its elements).
 */
#include "source.h"

#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most storage one strided read copies into a buffer: a block of lines spanning more is split. */
#define STRIDED_BUFFER_MAX ((uint64_t)32 << 20)

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

/* Walks the lines of a strided view in order: where each starts, in elements from the view's first. */
struct line_walk {
    uint64_t index[SOURCE_MAX_RANK];   /* the line's index in the dimensions before the last */
    uint32_t last;
    const uint64_t *shape;
    const int64_t *strides;
};

static void walk_start(struct line_walk *w, uint32_t rank, const uint64_t *shape, const int64_t *strides,
                       uint64_t first)
{
    memset(w->index, 0, sizeof w->index);
    w->last = rank - 1;
    w->shape = shape;
    w->strides = strides;
    for (uint32_t d = w->last; d-- > 0;) {
        w->index[d] = first % shape[d];
        first /= shape[d];
    }
}

static uint64_t walk_offset(const struct line_walk *w)
{
    uint64_t off = 0;
    for (uint32_t d = 0; d < w->last; d++)
        off += w->index[d] * (uint64_t)w->strides[d];
    return off;
}

static void walk_next(struct line_walk *w)
{
    for (uint32_t d = w->last; d-- > 0;) {
        if (++w->index[d] < w->shape[d])
            break;
        w->index[d] = 0;
    }
}

/*
 * The elements lines [first, first + count) touch, [*lo, *hi], in elements
 * from the view's first (strides are never negative: the readers refuse them).
 */
static void span_of_lines(uint32_t rank, const uint64_t *shape, const int64_t *strides, uint64_t first,
                          uint64_t count, uint64_t *lo, uint64_t *hi)
{
    struct line_walk w;
    walk_start(&w, rank, shape, strides, first);
    uint64_t line_span = (shape[rank - 1] - 1) * (uint64_t)strides[rank - 1];
    *lo = UINT64_MAX;
    *hi = 0;
    for (uint64_t line = 0; line < count; line++, walk_next(&w)) {
        uint64_t off = walk_offset(&w);
        if (off < *lo)
            *lo = off;
        if (off + line_span > *hi)
            *hi = off + line_span;
    }
}

/*
 * Copies `count` elements from src, src + src_pitch, ... to dst, dst +
 * dst_pitch, ...: constant-size copies the compiler inlines, no call per
 * element.
 */
static void copy_strided(uint8_t *dst, uint64_t dst_pitch, const uint8_t *src, uint64_t src_pitch, uint64_t count,
                         size_t esize)
{
    switch (esize) {
    case 1:
        for (uint64_t i = 0; i < count; i++)
            dst[i * dst_pitch] = src[i * src_pitch];
        break;
    case 2:
        for (uint64_t i = 0; i < count; i++)
            memcpy(dst + i * dst_pitch, src + i * src_pitch, 2);
        break;
    case 4:
        for (uint64_t i = 0; i < count; i++)
            memcpy(dst + i * dst_pitch, src + i * src_pitch, 4);
        break;
    case 8:
        for (uint64_t i = 0; i < count; i++)
            memcpy(dst + i * dst_pitch, src + i * src_pitch, 8);
        break;
    default:
        for (uint64_t i = 0; i < count; i++)
            memcpy(dst + i * dst_pitch, src + i * src_pitch, esize);
    }
}

/*
 * Gathers `count` lines starting at line `first` of a strided view whose
 * element `origin` is at `base`.  The innermost dimension is copied as one
 * run when its stride is 1, element by element otherwise.
 */
static void gather_lines(const uint8_t *base, uint64_t origin, size_t esize, uint32_t rank, const uint64_t *shape,
                         const int64_t *strides, uint64_t first, uint64_t count, uint8_t *dst)
{
    struct line_walk w;
    walk_start(&w, rank, shape, strides, first);
    uint64_t run_bytes = shape[rank - 1] * esize;
    uint64_t step = (uint64_t)strides[rank - 1] * esize;
    for (uint64_t line = 0; line < count; line++, walk_next(&w)) {
        const uint8_t *p = base + (walk_offset(&w) - origin) * esize;
        if (strides[rank - 1] == 1) {
            memcpy(dst, p, run_bytes);
            dst += run_bytes;
        } else {
            copy_strided(dst, esize, p, step, shape[rank - 1], esize);
            dst += run_bytes;
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

/* The cursor a read goes through (vfile.h): opened on first use, kept for the rest of one view_read_lines call. */
struct reader {
    const struct ckpt_source *src;
    struct vfile_reader file;
    ckpt_error *err;
};

/* Reads len bytes at `offset` of file f's data; a short read (the file shrank) is an error. */
static int read_bytes(struct reader *r, const struct source_file *f, const char *tensor, uint64_t offset,
                      uint64_t len, uint8_t *dst)
{
    if (!f->backing) {   /* bytes in memory: nothing can take them away */
        memcpy(dst, f->data + offset, len);
        return CKPT_OK;
    }
    char doing[300];
    snprintf(doing, sizeof doing, "reading tensor %.256s", tensor);
    return vfile_read(&r->file, f->backing, f->backing_offset + offset, dst, len, f->path, doing, r->err);
}

/*
 * Lines of a transposed matrix (strides [1, S]): column k of the lines
 * [first, first + count) is one run of `count` elements at first + k * S, so
 * each column is read with one pread into `run` and scattered into place.
 * Memory is one column's run, whatever the matrix's size.
 */
static int read_transposed(struct reader *r, const struct source_file *f, const struct tensor_entry *t, uint64_t start,
                           uint64_t first, uint64_t count, uint8_t *dst)
{
    size_t esize = ckpt_dtype_size(t->pub.dtype);
    uint64_t cols = t->pub.shape[1], stride = (uint64_t)t->strides[1];
    uint8_t *run = malloc((size_t)(count * esize));
    if (!run)
        return ckpt_fail(r->err, CKPT_ERR_NOMEM, "%s: out of memory reading tensor %s", f->path, t->pub.name);
    int rc = CKPT_OK;
    for (uint64_t k = 0; k < cols && !rc; k++) {
        rc = read_bytes(r, f, t->pub.name, start + (first + k * stride) * esize, count * esize, run);
        if (!rc)
            copy_strided(dst + k * esize, cols * esize, run, esize, count, esize);
    }
    free(run);
    return rc;
}

/*
 * Gathers lines [first, first + count) of a strided view of a file on disk,
 * whose element 0 is `start` bytes into the file's data: the storage they
 * touch is read with pread into a buffer, so a file truncated meanwhile is a
 * short read, an error.  A block spanning more than STRIDED_BUFFER_MAX is
 * halved until each half fits; a single line that does not fit is read as
 * the column of its elements, so each read is bounded whatever the strides.
 */
static int read_span_lines(struct reader *r, const struct source_file *f, const struct tensor_entry *t, uint64_t start,
                           uint32_t rank, const uint64_t *shape, const int64_t *strides, uint64_t first,
                           uint64_t count, uint8_t *dst)
{
    size_t esize = ckpt_dtype_size(t->pub.dtype);
    uint64_t lo, hi;
    span_of_lines(rank, shape, strides, first, count, &lo, &hi);
    uint64_t span = (hi - lo + 1) * esize;   /* the view was checked to lie inside its storage */
    if (span > STRIDED_BUFFER_MAX && count > 1) {
        uint64_t half = count / 2, line_bytes = shape[rank - 1] * esize;
        int rc = read_span_lines(r, f, t, start, rank, shape, strides, first, half, dst);
        return rc ? rc
                  : read_span_lines(r, f, t, start, rank, shape, strides, first + half, count - half,
                                    dst + half * line_bytes);
    }
    if (span > STRIDED_BUFFER_MAX)   /* one line, as lines of one element each */
        return read_span_lines(r, f, t, start + lo * esize, 2, (uint64_t[]){shape[rank - 1], 1},
                               (int64_t[]){strides[rank - 1], 1}, 0, shape[rank - 1], dst);
    uint8_t *buf = malloc((size_t)span);
    if (!buf)
        return ckpt_fail(r->err, CKPT_ERR_NOMEM, "%s: out of memory reading tensor %s", f->path, t->pub.name);
    int rc = read_bytes(r, f, t->pub.name, start + lo * esize, span, buf);
    if (!rc)
        gather_lines(buf, lo, esize, rank, shape, strides, first, count, dst);
    free(buf);
    return rc;
}

/*
 * Gathers lines of a strided view: from memory when the file is held there;
 * from disk a transposed matrix column run by column run, other views as the
 * storage spans their lines touch.
 */
static int read_strided(struct reader *r, const struct source_file *f, const struct tensor_entry *t, uint64_t first,
                        uint64_t count, uint8_t *dst)
{
    const ckpt_tensor *pub = &t->pub;
    size_t esize = ckpt_dtype_size(pub->dtype);
    uint64_t start = t->view.storage_offset + t->view.elem_offset * esize;
    if (f->backing && pub->rank == 2 && t->strides[0] == 1 && t->strides[1] > 1)
        return read_transposed(r, f, t, start, first, count, dst);
    /* rank 0 and 1 as [count, 1] lines of one element */
    uint32_t rank = pub->rank >= 2 ? pub->rank : 2;
    const uint64_t *shape = pub->rank >= 2 ? pub->shape : (uint64_t[]){pub->rank ? pub->shape[0] : 1, 1};
    const int64_t *strides = pub->rank >= 2 ? t->strides : (int64_t[]){pub->rank ? t->strides[0] : 0, 1};
    if (f->backing)
        return read_span_lines(r, f, t, start, rank, shape, strides, first, count, dst);
    gather_lines(f->data + start, 0, esize, rank, shape, strides, first, count, dst);
    return CKPT_OK;
}

/* Bytes of tiles one read of an NZ tensor copies at most. */
#define NZ_READ_MAX ((uint64_t)4 << 20)

/*
 * Lines of a tensor stored as FRACTAL_NZ tiles (source_present_nz), untiled.
 * The logical tensor is (..., M, N); the tiles hold the matrix T, the
 * logical one or its transpose, [TM, TN] as (..., ceil(TN/C0), TMp/16, 16,
 * C0) with TMp = 16 * ceil(TM/16): element (i, k) of T is at
 * ((k / C0) * TMp + i) * C0 + k % C0 of its batch.
 *  - As stored: logical rows [m0, m1) are, in each column block, one run of
 *    (m1 - m0) * C0 elements, read at once and spread over the rows.
 *  - Transposed: logical row m is T's column m, in column block m / C0 at a
 *    stride of C0: runs of the block are read and gathered.
 * Each read is at most NZ_READ_MAX bytes, whatever the matrix.
 */
static int read_nz_lines(struct reader *r, const struct tensor_entry *t, uint64_t first, uint64_t count, uint8_t *dst)
{
    const ckpt_tensor *pub = &t->pub;
    const struct source_file *f = &r->src->files[t->view.file];
    size_t es = ckpt_dtype_size(pub->dtype);
    uint64_t m = pub->shape[pub->rank - 2], n = pub->shape[pub->rank - 1], c0 = t->storage.c0;
    bool transposed = t->storage.transposed;
    uint64_t tm = transposed ? n : m, tn = transposed ? m : n;
    uint64_t tmp_rows = (tm + 15) / 16 * 16, n1 = (tn + c0 - 1) / c0, run = NZ_READ_MAX / (c0 * es);
    uint64_t start = t->view.storage_offset + t->view.elem_offset * es, row_bytes = n * es;
    uint8_t *buf = malloc((size_t)(run * c0 * es));
    if (!buf)
        return ckpt_fail(r->err, CKPT_ERR_NOMEM, "%s: out of memory reading tensor %s", f->path, pub->name);
    int rc = CKPT_OK;
    for (uint64_t line = first; line < first + count && !rc;) {
        uint64_t m0 = line % m, m1 = m - m0 < first + count - line ? m : m0 + (first + count - line);
        uint64_t batch = start + line / m * n1 * tmp_rows * c0 * es;
        uint8_t *out = dst + (line - first) * row_bytes;
        for (uint64_t j = 0; j < n1 && !transposed && !rc; j++) {
            uint64_t width = tn - j * c0 < c0 ? tn - j * c0 : c0;
            for (uint64_t r0 = m0; r0 < m1 && !rc; r0 += run) {
                uint64_t k = m1 - r0 < run ? m1 - r0 : run;
                rc = read_bytes(r, f, pub->name, batch + (j * tmp_rows + r0) * c0 * es, k * c0 * es, buf);
                for (uint64_t i = 0; i < k && !rc; i++)
                    memcpy(out + (r0 - m0 + i) * row_bytes + j * c0 * es, buf + i * c0 * es, width * es);
            }
        }
        for (uint64_t jb = m0 / c0; transposed && jb * c0 < m1 && !rc; jb++) {
            uint64_t lo = m0 > jb * c0 ? m0 : jb * c0, hi = m1 < (jb + 1) * c0 ? m1 : (jb + 1) * c0;
            for (uint64_t k0 = 0; k0 < tm && !rc; k0 += run) {
                uint64_t k = tm - k0 < run ? tm - k0 : run;
                rc = read_bytes(r, f, pub->name, batch + (jb * tmp_rows + k0) * c0 * es, k * c0 * es, buf);
                for (uint64_t mm = lo; mm < hi && !rc; mm++)
                    copy_strided(out + (mm - m0) * row_bytes + k0 * es, es, buf + (mm % c0) * es, c0 * es, k, es);
            }
        }
        line += m1 - m0;
    }
    free(buf);
    return rc;
}

/* Reads lines of a tensor held by one view. */
static int read_view_lines(struct reader *r, const struct tensor_entry *t, uint64_t first, uint64_t count,
                           uint8_t *dst)
{
    const ckpt_tensor *pub = &t->pub;
    size_t esize = ckpt_dtype_size(pub->dtype);
    uint64_t line_bytes = view_line_bytes(pub);
    uint64_t len = count * line_bytes;
    if (len == 0)
        return CKPT_OK;
    const struct source_file *f = &r->src->files[t->view.file];
    uint64_t start = t->view.storage_offset + t->view.elem_offset * esize;
    if (t->storage.layout == CKPT_LAYOUT_FRACTAL_NZ)
        return read_nz_lines(r, t, first, count, dst);
    if (!t->strides) {
        int rc = read_bytes(r, f, pub->name, start + first * line_bytes, len, dst);
        if (rc)
            return rc;
    } else {
        int rc = read_strided(r, f, t, first, count, dst);
        if (rc)
            return rc;
    }
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
static int read_part_lines(struct reader *r, const struct tensor_entry *whole, const struct tensor_part *part,
                           uint64_t first, uint64_t count, uint8_t *dst)
{
    const struct tensor_entry *p = &part->entry;
    uint32_t rank = whole->pub.rank;
    size_t esize = ckpt_dtype_size(whole->pub.dtype);
    uint64_t line_bytes = view_line_bytes(&whole->pub), end = first + count;
    if (rank <= 1) {   /* one element a line: the piece is one run of lines */
        uint64_t at = rank ? part->offsets[0] : 0, n = rank ? p->shape[0] : 1;
        uint64_t lo = at > first ? at : first, hi = at + n < end ? at + n : end;
        return lo < hi ? read_view_lines(r, p, lo - at, hi - lo, dst + (lo - first) * esize) : CKPT_OK;
    }
    uint32_t row_dim = rank - 2;   /* lines of a run differ only in this index */
    uint64_t run_lines = p->shape[row_dim], runs = 1;
    for (uint32_t d = 0; d < row_dim; d++)
        runs *= p->shape[d];
    bool whole_lines = p->shape[rank - 1] == whole->shape[rank - 1];
    uint64_t column = part->offsets[rank - 1] * esize;
    uint64_t index[SOURCE_MAX_RANK] = {0};   /* the run's index in the piece, dimensions before row_dim */
    int rc = CKPT_OK;
    for (uint64_t run = 0; run < runs && !rc; run++) {
        uint64_t line = 0;   /* the run's first line in the whole tensor */
        for (uint32_t d = 0; d <= row_dim; d++)
            line = line * whole->shape[d] + part->offsets[d] + (d < row_dim ? index[d] : 0);
        if (line >= end)
            break;   /* runs come in increasing line order */
        uint64_t lo = line > first ? line : first, hi = line + run_lines < end ? line + run_lines : end;
        uint64_t local = run * run_lines + (lo - line);
        if (lo < hi && whole_lines) {
            rc = read_view_lines(r, p, local, hi - lo, dst + (lo - first) * line_bytes);
        } else if (lo < hi) {
            for (uint64_t l = lo; l < hi && !rc; l++)
                rc = read_view_lines(r, p, local + (l - lo), 1, dst + (l - first) * line_bytes + column);
        }
        for (uint32_t d = row_dim; d-- > 0;) {
            if (++index[d] < p->shape[d])
                break;
            index[d] = 0;
        }
    }
    return rc;
}

int view_read_lines(const struct ckpt_source *src, const struct tensor_entry *t, uint64_t first, uint64_t count,
                    uint8_t *dst, ckpt_error *err)
{
    struct reader r = {src, VFILE_READER_INIT, err};
    int rc = CKPT_OK;
    if (!t->parts)
        rc = read_view_lines(&r, t, first, count, dst);
    for (size_t i = 0; i < t->part_count && !rc; i++)
        if (t->parts[i].entry.pub.nbytes)
            rc = read_part_lines(&r, t, &t->parts[i], first, count, dst);
    vfile_reader_close(&r.file);
    return rc;
}
