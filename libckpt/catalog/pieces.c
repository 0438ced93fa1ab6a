/*
 * pieces.c: tensors that no single view describes, because the checkpoint
 * stores them cut up: tensor-parallel shards, DCP chunks, ZeRO partitions.
 *
 * A reader declares the whole tensor with its pieces; each piece is a box
 * of the tensor with a view of its own.  Here every piece is checked like a
 * tensor, and the boxes must tile the tensor exactly: their volumes add up
 * to the tensor's element count and no two of them overlap, which together
 * leave no gap.  Reading (view.c) then copies each box into place.
 */
#include "source.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdlib.h>
#include <string.h>

static const char *piece_file(const struct ckpt_source *src, const struct tensor_part *p)
{
    return src->files[p->entry.view.file].path;
}

static bool boxes_overlap(uint32_t rank, const struct tensor_part *a, const struct tensor_part *b)
{
    for (uint32_t d = 0; d < rank; d++) {
        uint64_t a0 = a->offsets[d], a1 = a0 + a->entry.shape[d];
        uint64_t b0 = b->offsets[d], b1 = b0 + b->entry.shape[d];
        if (a1 <= b0 || b1 <= a0)
            return false;
    }
    return true;
}

/*
 * No two pieces may share an element.  The pieces of a real checkpoint form
 * a grid: along each dimension their extents are equal or disjoint.  So
 * they are sorted by their extent along dimension 0, each run of equal
 * extents is checked the same way along the next dimension, and only where
 * extents overlap without being equal are the pieces of that run compared
 * pairwise (a sweep), within a budget: a hostile tiling is refused fast
 * instead of taking quadratic time.
 */
#define OVERLAP_BUDGET ((uint64_t)1 << 26)   /* pairwise comparisons one tensor may take */

struct overlap {
    const struct ckpt_source *src;
    const char *name;
    uint32_t rank;
    uint64_t budget;
};

/* Orders parts by their extent along the dimension *ctx points to. */
static int by_extent(const void *pa, const void *pb, void *ctx)
{
    const struct tensor_part *a = *(const struct tensor_part *const *)pa, *b = *(const struct tensor_part *const *)pb;
    uint32_t d = *(const uint32_t *)ctx;
    if (a->offsets[d] != b->offsets[d])
        return a->offsets[d] < b->offsets[d] ? -1 : 1;
    return (a->entry.shape[d] > b->entry.shape[d]) - (a->entry.shape[d] < b->entry.shape[d]);
}

/* p[0, n), sorted along d: every pair whose extents along d meet is compared. */
static int sweep(struct overlap *o, struct tensor_part **p, size_t n, uint32_t d, ckpt_error *err)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t end = p[i]->offsets[d] + p[i]->entry.shape[d];
        for (size_t j = i + 1; j < n && p[j]->offsets[d] < end; j++) {
            if (o->budget-- == 0)
                return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s: its pieces are cut too irregularly to check "
                                 "(no framework cuts a tensor this way)", piece_file(o->src, p[i]), o->name);
            if (boxes_overlap(o->rank, p[i], p[j]))
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a piece overlaps another (in %s)",
                                 piece_file(o->src, p[i]), o->name, piece_file(o->src, p[j]));
        }
    }
    return CKPT_OK;
}

static int check_region(struct overlap *o, struct tensor_part **p, size_t n, uint32_t d, ckpt_error *err)
{
    if (n < 2)
        return CKPT_OK;
    if (d == o->rank)   /* equal extents along every dimension: the same box twice */
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a piece overlaps another (in %s)",
                         piece_file(o->src, p[0]), o->name, piece_file(o->src, p[1]));
    qsort_r(p, n, sizeof *p, by_extent, &d);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        uint64_t end = p[i]->offsets[d] + p[i]->entry.shape[d];
        while (j < n && p[j]->offsets[d] == p[i]->offsets[d] && p[j]->entry.shape[d] == p[i]->entry.shape[d])
            j++;
        if (j < n && p[j]->offsets[d] < end)
            return sweep(o, p, n, d, err);   /* extents that meet without being equal: not a grid here */
        int rc = check_region(o, p + i, j - i, d + 1, err);
        if (rc)
            return rc;
        i = j;
    }
    return CKPT_OK;
}

/* Refuses two parts that share an element.  Empty parts share nothing. */
static int check_no_overlap(const struct ckpt_source *src, const char *name, uint32_t rank,
                            struct tensor_part *parts, size_t count, ckpt_error *err)
{
    if (rank == 0)
        return CKPT_OK;   /* a scalar has one element: the volume check already allows only one part */
    struct tensor_part **order = malloc(count * sizeof *order);
    if (!order)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory checking the pieces of tensor %s", name);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (parts[i].entry.pub.nbytes)
            order[n++] = &parts[i];
    struct overlap o = {src, name, rank, OVERLAP_BUDGET};
    int rc = check_region(&o, order, n, 0, err);
    free(order);
    return rc;
}

uint64_t source_max_pieces(uint32_t rank, const uint64_t *shape)
{
    uint64_t stacked = SOURCE_PIECES_PER_MATRIX;
    for (uint32_t d = 0; d + 2 < rank; d++)
        if (!ckpt_mul_u64(stacked, shape[d], &stacked))
            return UINT64_MAX;
    return stacked > SOURCE_MAX_PIECES ? stacked : SOURCE_MAX_PIECES;
}

/* Checks one piece (inside the tensor, a sound view) and fills its part. */
static int fill_part(const struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                     const uint64_t *shape, const struct tensor_piece *piece, struct tensor_part *part,
                     uint64_t *elements, ckpt_error *err)
{
    int rc = source_check_view(src, name, dtype, rank, piece->sizes, &piece->view, err);
    if (rc)
        return rc;
    const char *file = src->files[piece->view.file].path;
    for (uint32_t d = 0; d < rank; d++) {
        uint64_t end;
        if (!ckpt_add_u64(piece->offsets[d], piece->sizes[d], &end) || end > shape[d])
            return ckpt_fail(err, CKPT_ERR_FORMAT,
                             "%s: tensor %s: a piece at %llu of size %llu reaches past dimension %u (size %llu)", file,
                             name, (unsigned long long)piece->offsets[d], (unsigned long long)piece->sizes[d], d,
                             (unsigned long long)shape[d]);
    }
    ckpt_product_u64(piece->sizes, rank, elements);   /* bounded by the tensor's own count */
    rc = source_fill_entry(&part->entry, name, dtype, rank, piece->sizes, &piece->view,
                           *elements * ckpt_dtype_size(dtype), err);
    if (rc)
        return rc;
    part->offsets = malloc((rank ? rank : 1) * sizeof *part->offsets);
    if (!part->offsets)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", name);
    if (rank)
        memcpy(part->offsets, piece->offsets, rank * sizeof *part->offsets);
    return CKPT_OK;
}

int source_add_pieces(struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                      const uint64_t *shape, const struct tensor_piece *pieces, size_t count, ckpt_error *err)
{
    if (count == 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s has no pieces", src->path, name);
    const char *file = pieces[0].view.file < src->file_count ? src->files[pieces[0].view.file].path : src->path;
    uint64_t most = rank <= SOURCE_MAX_RANK ? source_max_pieces(rank, shape) : 0;
    if (count > most)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s is cut into %zu pieces, more than its shape allows (%llu)",
                         file, name, count, (unsigned long long)most);
    uint64_t nbytes;
    int rc = source_check_new_tensor(src, name, dtype, rank, shape, pieces[0].view.file, &nbytes, err);
    if (rc)
        return rc;
    if (src->tensor_count + count >= src->limits.max_tensors)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: more than %llu tensors and pieces (limit max_tensors)", file,
                         (unsigned long long)src->limits.max_tensors);

    struct tensor_entry t = {.alias_target = SIZE_MAX};
    t.parts = calloc(count, sizeof *t.parts);
    t.shape = malloc((rank ? rank : 1) * sizeof *t.shape);
    if (!t.parts || !t.shape) {
        source_entry_release(&t);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", name);
    }
    if (rank)
        memcpy(t.shape, shape, rank * sizeof *t.shape);
    uint64_t covered = 0, total = nbytes / ckpt_dtype_size(dtype);
    for (size_t i = 0; i < count && !rc; i++) {
        uint64_t elements = 0;
        t.part_count = i + 1;
        rc = fill_part(src, name, dtype, rank, shape, &pieces[i], &t.parts[i], &elements, err);
        if (!rc && (!ckpt_add_u64(covered, elements, &covered) || covered > total))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its pieces hold more elements than the tensor",
                           src->files[pieces[i].view.file].path, name);
    }
    if (!rc && covered < total)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its pieces cover %llu of its %llu elements", file,
                       name, (unsigned long long)covered, (unsigned long long)total);
    if (!rc)
        rc = check_no_overlap(src, name, rank, t.parts, count, err);
    if (rc) {
        source_entry_release(&t);
        return rc;
    }
    t.pub = (ckpt_tensor){name, dtype, rank, t.shape, nbytes, pieces[0].view.file, NULL};
    return source_append_entry(src, &t, err);
}

/*
 * Cuts the row-major run [first, first + count) of a tensor of `shape` into
 * boxes whose elements are consecutive in the run: from each position, the
 * largest block of whole sub-tensors it is aligned to.  At most 2 * rank - 1
 * boxes; offsets and sizes get rank values per box.  Returns the box count.
 */
static size_t run_boxes(uint32_t rank, const uint64_t *shape, uint64_t first, uint64_t count, uint64_t *offsets,
                        uint64_t *sizes)
{
    if (rank == 0)
        return count ? 1 : 0;
    uint64_t block[SOURCE_MAX_RANK];   /* elements per index of dimension d */
    block[rank - 1] = 1;
    for (uint32_t d = rank - 1; d-- > 0;)
        block[d] = block[d + 1] * shape[d + 1];
    size_t boxes = 0;
    for (uint64_t pos = first, end = first + count; pos < end; boxes++) {
        uint32_t d = 0;
        while (pos % block[d] != 0 || end - pos < block[d])
            d++;                                  /* ends at rank - 1 at the latest, where block is 1 */
        uint64_t *off = offsets + boxes * rank, *size = sizes + boxes * rank;
        for (uint32_t k = 0; k < rank; k++) {
            off[k] = k <= d ? pos / block[k] % shape[k] : 0;
            size[k] = k < d ? 1 : shape[k];
        }
        uint64_t room = shape[d] - off[d], want = (end - pos) / block[d];
        size[d] = want < room ? want : room;
        pos += size[d] * block[d];
    }
    return boxes;
}

int source_add_runs(struct ckpt_source *src, const char *name, ckpt_dtype dtype, uint32_t rank,
                    const uint64_t *shape, const struct tensor_run *runs, size_t count, ckpt_error *err)
{
    uint64_t total, boxes_max;
    const char *file = count && runs[0].view.file < src->file_count ? src->files[runs[0].view.file].path : src->path;
    if (rank > SOURCE_MAX_RANK || !ckpt_product_u64(shape, rank, &total) ||
        !ckpt_mul_u64(count, rank ? 2 * rank - 1 : 1, &boxes_max) || boxes_max > SOURCE_MAX_PIECES * 2ull)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s: too many runs or dimensions", file, name);
    size_t width = rank ? rank : 1;
    struct tensor_piece *pieces = calloc(boxes_max ? boxes_max : 1, sizeof *pieces);
    uint64_t *offsets = calloc(boxes_max * width + 1, sizeof *offsets);
    uint64_t *sizes = calloc(boxes_max * width + 1, sizeof *sizes);
    int rc = CKPT_OK;
    if (!pieces || !offsets || !sizes)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory adding tensor %s", name);
    size_t n = 0;
    for (size_t i = 0; i < count && !rc; i++) {
        uint64_t end;
        if (runs[i].view.strides || !ckpt_add_u64(runs[i].first, runs[i].count, &end) || end > total) {
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a run reaches past its %llu elements",
                           src->files[runs[i].view.file].path, name, (unsigned long long)total);
            break;
        }
        size_t boxes = run_boxes(rank, shape, runs[i].first, runs[i].count, offsets + n * width, sizes + n * width);
        uint64_t skipped = 0;   /* elements of the run before this box */
        for (size_t b = n; b < n + boxes && !rc; b++) {
            uint64_t elements = 0;
            pieces[b].offsets = offsets + b * width;
            pieces[b].sizes = sizes + b * width;
            pieces[b].view = runs[i].view;
            ckpt_product_u64(pieces[b].sizes, rank, &elements);
            if (!ckpt_add_u64(pieces[b].view.elem_offset, skipped, &pieces[b].view.elem_offset))
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a run's offset overflows",
                               src->files[runs[i].view.file].path, name);
            skipped += elements;
        }
        n += boxes;
    }
    if (!rc)
        rc = source_add_pieces(src, name, dtype, rank, shape, pieces, n, err);
    free(pieces);
    free(offsets);
    free(sizes);
    return rc;
}
