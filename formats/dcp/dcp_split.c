/*
 * dcp_split.c: one DCP entry declared as many tensors, one per index of its
 * leading axes; see dcp.h.
 *
 * Megatron's torch_dist stacks a homogeneous block's layers on a leading
 * axis and a layer's routed experts on the next ([L, E, 2F, H]), while the
 * model, and every rule written for it, knows one matrix per layer and
 * expert.  Each chunk is a box of the entry; the part of it at one index of
 * the split axes is a box of that index's tensor, found by offsetting the
 * chunk's view, never by copying.  Chunks are bucketed by index in two
 * passes (count, then fill), so the work is the number of parts made, not
 * indexes times chunks: Qwen3-235B's 94 x 128 experts come in 24,064
 * chunks per entry.
 */
#include "dcp.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An entry being split: its first `axes` dimensions index the tensors, flattened row-major. */
struct split {
    const struct dcp_entry *e;
    unsigned axes;
    uint64_t per_first;     /* tensors per index of axis 0 (shape[1] when two axes are split, else 1) */
};

static uint64_t flat(const struct split *sp, uint64_t i0, uint64_t i1)
{
    return i0 * sp->per_first + i1;
}

/* Calls `fn` with every flattened index chunk `p` covers along the split axes. */
static void each_index(const struct split *sp, const struct tensor_piece *p, void (*fn)(void *, uint64_t), void *ctx)
{
    uint64_t hi1 = sp->axes > 1 ? p->offsets[1] + p->sizes[1] : 1, lo1 = sp->axes > 1 ? p->offsets[1] : 0;
    for (uint64_t i0 = p->offsets[0]; i0 < p->offsets[0] + p->sizes[0]; i0++)
        for (uint64_t i1 = lo1; i1 < hi1; i1++)
            fn(ctx, flat(sp, i0, i1));
}

struct buckets {
    size_t *start;   /* outputs + 1 prefix sums */
    size_t *fill;    /* the next free slot of each bucket */
    size_t *member;  /* chunk indexes, bucket by bucket */
    size_t chunk;    /* the chunk being placed */
};

static void count_one(void *ctx, uint64_t i)
{
    ((struct buckets *)ctx)->start[i + 1]++;
}

static void place_one(void *ctx, uint64_t i)
{
    struct buckets *b = ctx;
    b->member[b->fill[i]++] = b->chunk;
}

/* Chunk `p`'s part at index (i0, i1) of the split axes, as a piece of that index's tensor. */
static int sub_piece(const struct split *sp, const struct tensor_piece *p, uint64_t i0, uint64_t i1,
                     struct tensor_piece *out, int64_t *strides, ckpt_error *err)
{
    const struct dcp_entry *e = sp->e;
    uint64_t at[2] = {i0 - p->offsets[0], sp->axes > 1 ? i1 - p->offsets[1] : 0}, skip = 0;
    for (unsigned d = 0; d < sp->axes; d++) {
        uint64_t step = 1, part;   /* dimension d's stride: given, or the row-major one */
        if (p->view.strides)
            step = (uint64_t)p->view.strides[d];
        else if (!ckpt_product_u64(p->sizes + d + 1, e->rank - d - 1, &step))
            return ckpt_fail(err, CKPT_ERR_LIMIT, "tensor %s: a chunk too large", e->name);
        if (!ckpt_mul_u64(at[d], step, &part) || !ckpt_add_u64(skip, part, &skip))
            return ckpt_fail(err, CKPT_ERR_LIMIT, "tensor %s: a chunk too large", e->name);
    }
    *out = *p;
    out->offsets = p->offsets + sp->axes;
    out->sizes = p->sizes + sp->axes;
    if (!ckpt_add_u64(out->view.elem_offset, skip, &out->view.elem_offset))
        return ckpt_fail(err, CKPT_ERR_LIMIT, "tensor %s: a chunk too large", e->name);
    if (p->view.strides) {
        memcpy(strides, p->view.strides + sp->axes, (e->rank - sp->axes) * sizeof *strides);
        out->view.strides = strides;
    }
    return CKPT_OK;
}

static int declare_index(struct ckpt_source *src, const struct split *sp, const struct tensor_piece *pieces,
                         const struct buckets *b, uint64_t o, struct tensor_piece *sub, int64_t *strides,
                         const struct dcp_options *opt, char *name, size_t cap, ckpt_error *err)
{
    const struct dcp_entry *e = sp->e;
    uint64_t index[DCP_MAX_SPLIT] = {o / sp->per_first, o % sp->per_first};
    size_t n = b->start[o + 1] - b->start[o], width = e->rank - sp->axes;
    if (n == 0) {
        char at[48];
        snprintf(at, sizeof at, sp->axes > 1 ? "[%llu, %llu]" : "[%llu]", (unsigned long long)index[0],
                 (unsigned long long)index[1]);
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: no chunk holds its index %s", src->path, e->name, at);
    }
    for (size_t k = 0; k < n; k++) {
        int rc = sub_piece(sp, &pieces[b->member[b->start[o] + k]], index[0], index[1], &sub[k],
                           strides + k * (width ? width : 1), err);
        if (rc)
            return rc;
    }
    if (!opt->rename(opt->ctx, e->name, index, sp->axes, name, cap))
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: entry %s: its name is too long", src->path, e->name);
    return source_add_pieces(src, name, e->dtype, e->rank - sp->axes, e->shape + sp->axes, sub, n, err);
}

int dcp_declare_split(struct ckpt_source *src, const struct dcp_entry *e, const struct tensor_piece *pieces,
                      unsigned axes, const struct dcp_options *opt, char *name, size_t cap, ckpt_error *err)
{
    if (axes > DCP_MAX_SPLIT || axes >= e->rank || !opt->rename)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: entry %s of rank %u cannot be split along %u axes", src->path,
                         e->name, e->rank, axes);
    struct split sp = {e, axes, axes > 1 ? e->shape[1] : 1};
    uint64_t outputs, parts = 0;
    if (!ckpt_product_u64(e->shape, axes, &outputs) || outputs > src->limits.max_tensors)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: entry %s would make more than %llu tensors (limit max_tensors)",
                         src->path, e->name, (unsigned long long)src->limits.max_tensors);
    for (size_t c = 0; c < e->chunk_count; c++) {
        uint64_t v = 1, end;
        for (unsigned d = 0; d < axes; d++) {
            if (!ckpt_add_u64(pieces[c].offsets[d], pieces[c].sizes[d], &end) || end > e->shape[d])
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a chunk reaches past dimension %u (size %llu)",
                                 src->path, e->name, d, (unsigned long long)e->shape[d]);
            v *= pieces[c].sizes[d];   /* at most outputs */
        }
        if ((parts += v) > src->limits.max_tensors)
            return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: entry %s: its chunks make more than %llu parts (limit "
                             "max_tensors)", src->path, e->name, (unsigned long long)src->limits.max_tensors);
    }
    struct buckets b = {calloc(outputs + 1, sizeof *b.start), malloc((outputs + 1) * sizeof *b.fill),
                        malloc((parts + 1) * sizeof *b.member), 0};
    size_t most = 0, width = e->rank - axes;
    int rc = b.start && b.fill && b.member ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory splitting %s",
                                                                 e->name);
    for (b.chunk = 0; b.chunk < e->chunk_count && !rc; b.chunk++)
        each_index(&sp, &pieces[b.chunk], count_one, &b);
    for (uint64_t o = 0; o < outputs && !rc; o++) {
        most = b.start[o + 1] > most ? b.start[o + 1] : most;
        b.start[o + 1] += b.start[o];
        b.fill[o] = b.start[o];
    }
    for (b.chunk = 0; b.chunk < e->chunk_count && !rc; b.chunk++)
        each_index(&sp, &pieces[b.chunk], place_one, &b);
    struct tensor_piece *sub = rc ? NULL : calloc(most + 1, sizeof *sub);
    int64_t *strides = rc ? NULL : calloc((most + 1) * (width ? width : 1), sizeof *strides);
    if (!rc && (!sub || !strides))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory splitting %s", e->name);
    for (uint64_t o = 0; o < outputs && !rc; o++)
        rc = declare_index(src, &sp, pieces, &b, o, sub, strides, opt, name, cap, err);
    free(sub);
    free(strides);
    free(b.start);
    free(b.fill);
    free(b.member);
    return rc;
}
