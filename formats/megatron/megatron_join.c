/*
 * megatron_join.c: what the dense and the expert merge of the legacy
 * Megatron-LM reader share: names, finding a rank's part of a tensor, and
 * joining the parts (checked, then declared as pieces); see megatron.h.
 */
#include "megatron.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_PREFIX "model."
#define COMPARE_BLOCK (1u << 20)

bool megatron_is_weight(const char *name)
{
    const char *last = strrchr(name, '.');
    return strncmp(name, MODEL_PREFIX, strlen(MODEL_PREFIX)) == 0 && !(last && strncmp(last, "._extra_state", 13) == 0);
}

int megatron_global_name(const struct megatron_walk *w, const char *name, char *out, ckpt_error *err)
{
    const struct ckpt_source *s = w->ranks[megatron_dense_rank(w, 0)].src;
    char *mtp;
    name += strlen(MODEL_PREFIX);
    const char *at = strstr(name, "decoder.layers.");
    if (!at)
        at = strstr(name, "encoder.layers.");
    int n;
    if (!at || (at != name && at[-1] != '.')) {
        n = snprintf(out, MEGATRON_MAX_NAME, "%s", name);
    } else {
        const char *digits = at + strlen("decoder.layers."), *end = digits;
        long local = 0, first = w->lay->first_layer[w->stage], count = w->lay->first_layer[w->stage + 1] - first;
        while (*end >= '0' && *end <= '9' && local <= count)
            local = local * 10 + (*end++ - '0');
        if (end == digits || *end != '.' || local >= count)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: layer number outside the stage's %ld layers",
                             s->path, name, count);
        n = snprintf(out, MEGATRON_MAX_NAME, "%.*s%ld%s", (int)(digits - name), name, local + first, end);
    }
    /* core >= 0.17 names the MTP inner layer mtp_model_layer; torch_dist and older files say transformer_layer */
    if (n >= 0 && n < MEGATRON_MAX_NAME - 2 && strncmp(out, "mtp.layers.", 11) == 0 &&
        (mtp = strstr(out, ".mtp_model_layer.")) != NULL) {
        memmove(mtp + 19, mtp + 17, strlen(mtp + 17) + 1);
        memcpy(mtp, ".transformer_layer.", 19);
    }
    if (n < 0 || n >= MEGATRON_MAX_NAME - 2)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor name too long", s->path);
    return CKPT_OK;
}

long megatron_dense_rank(const struct megatron_walk *w, long tp)
{
    for (size_t i = 0; i < w->lay->grid; i++)
        if (w->ranks[i].tp == tp && w->ranks[i].src)
            return (long)i;
    return -1;
}

long megatron_expert_rank(const struct megatron_walk *w, long ep, long etp)
{
    for (size_t i = 0; i < w->lay->grid; i++)
        if (w->ranks[i].ep == ep && w->ranks[i].etp == etp && w->ranks[i].src)
            return (long)i;
    return -1;
}

const struct tensor_entry *megatron_entry(const struct megatron_walk *w, long file, long first, const char *name,
                                          ckpt_error *err)
{
    const struct ckpt_source *s = w->ranks[file].src;
    size_t i = source_lookup(s, name);
    if (i == SIZE_MAX) {
        ckpt_fail(err, CKPT_ERR_FORMAT, "%s: lacks tensor %s, which %s holds", s->path, name,
                  w->ranks[first].src->path);
        return NULL;
    }
    const struct tensor_entry *e = &s->tensors[i];
    if (e->alias_target != SIZE_MAX)
        e = &s->tensors[e->alias_target];
    if (e->parts) {
        ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: tensor %s is stored in pieces", s->path, name);
        return NULL;
    }
    return e;
}

int megatron_compare(const struct ckpt_source *a, const struct tensor_entry *ea, const struct ckpt_source *b,
                     const struct tensor_entry *eb, const char *name, ckpt_error *err)
{
    uint64_t lines = view_line_count(&ea->pub), line = view_line_bytes(&ea->pub);
    uint64_t block = line && line < COMPARE_BLOCK ? COMPARE_BLOCK / line : 1;
    if (block > lines)
        block = lines;
    uint64_t bytes;
    if (!ckpt_mul_u64(block, line, &bytes) || bytes > SIZE_MAX / 2)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s: lines too long to compare", b->path, name);
    uint8_t *buf = malloc(bytes ? 2 * (size_t)bytes : 1);
    if (!buf)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory comparing %s", b->path, name);
    int rc = CKPT_OK;
    for (uint64_t first = 0; first < lines && !rc; first += block) {
        uint64_t n = lines - first < block ? lines - first : block;
        rc = view_read_lines(a, ea, first, n, buf, err);
        if (!rc)
            rc = view_read_lines(b, eb, first, n, buf + bytes, err);
        if (!rc && memcmp(buf, buf + bytes, (size_t)(n * line)) != 0)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s and %s: replicated tensor %s differs between ranks", a->path,
                           b->path, name);
    }
    free(buf);
    return rc;
}

/* Checks part `e` of `name` against part `e0` (type, rank, the dimensions that are not split). */
int megatron_check_part(const struct ckpt_source *s, const struct ckpt_source *first, const struct tensor_entry *e,
                      const struct tensor_entry *e0, enum megatron_split how, const char *name, ckpt_error *err)
{
    uint32_t dim = how == MEGATRON_ROW ? 1 : 0;
    if (e->pub.dtype != e0->pub.dtype || e->pub.rank != e0->pub.rank)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s and %s: tensor %s has another type or rank", first->path, s->path,
                         name);
    if (how != MEGATRON_REPLICATED && e->pub.rank <= dim)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s has no dimension %u to split", s->path, name, dim);
    if (how == MEGATRON_GATE_UP && e->shape[0] % 2)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: SwiGLU tensor %s has an odd row count %llu", s->path, name,
                         (unsigned long long)e->shape[0]);
    for (uint32_t d = 0; d < e->pub.rank; d++)
        if (e->shape[d] != e0->shape[d] && (how == MEGATRON_REPLICATED || d != dim))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s and %s: tensor %s differs in dimension %u (%llu, %llu)",
                             first->path, s->path, name, d, (unsigned long long)e0->shape[d],
                             (unsigned long long)e->shape[d]);
    return CKPT_OK;
}

/* The piece of a part holding rows [row, row + rows) of it (or all of it), placed at `at` along dim. */
static int add_piece(struct tensor_piece *pc, uint64_t *offsets, uint64_t *sizes, const struct tensor_entry *e,
                     uint32_t dim, uint64_t at, uint64_t row, uint64_t rows, uint32_t base, const char *name,
                     ckpt_error *err)
{
    memset(offsets, 0, e->pub.rank * sizeof *offsets);
    memcpy(sizes, e->shape, e->pub.rank * sizeof *sizes);
    offsets[dim] = at;
    pc->offsets = offsets;
    pc->sizes = sizes;
    pc->view = e->view;
    pc->view.file += base;
    pc->view.strides = e->strides;
    if (rows == UINT64_MAX)
        return CKPT_OK;
    sizes[0] = rows;
    uint64_t step, skip;
    if (e->strides)
        step = (uint64_t)e->strides[0];
    else if (!ckpt_product_u64(e->shape + 1, e->pub.rank - 1, &step))
        return ckpt_fail(err, CKPT_ERR_LIMIT, "tensor %s: too large", name);
    if (!ckpt_mul_u64(row, step, &skip) || !ckpt_add_u64(pc->view.elem_offset, skip, &pc->view.elem_offset))
        return ckpt_fail(err, CKPT_ERR_LIMIT, "tensor %s: too large", name);
    return CKPT_OK;
}

/* Declares `name` from the parts stacked along the split dimension (the first one's when replicated). */
static int declare(const struct megatron_walk *w, const char *name, const struct tensor_entry *const *parts,
                   const long *files, size_t count, enum megatron_split how, ckpt_error *err)
{
    size_t n = how == MEGATRON_REPLICATED ? 1 : count, per = how == MEGATRON_GATE_UP ? 2 : 1, total = n * per;
    uint32_t rank = parts[0]->pub.rank, dim = how == MEGATRON_ROW ? 1 : 0;
    const uint32_t *base = w->base + (size_t)w->stage * w->lay->grid;
    struct tensor_piece *pieces = calloc(total, sizeof *pieces);
    uint64_t *boxes = calloc((2 * total + 1) * (rank ? rank : 1), sizeof *boxes);
    if (!pieces || !boxes) {
        free(pieces);
        free(boxes);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "tensor %s: out of memory", name);
    }
    uint64_t *shape = boxes + 2 * total * rank, at = 0, gates = 0;
    memcpy(shape, parts[0]->shape, rank * sizeof *shape);
    for (size_t k = 0; k < n && how == MEGATRON_GATE_UP; k++)
        gates += parts[k]->shape[0] / 2;
    int rc = CKPT_OK;
    for (size_t k = 0; k < n && !rc; k++) {
        const struct tensor_entry *e = parts[k];
        uint64_t *box = boxes + 2 * k * per * rank;
        uint32_t b = base[files[k]];
        if (how != MEGATRON_GATE_UP) {
            rc = add_piece(&pieces[k], box, box + rank, e, dim, at, 0, UINT64_MAX, b, name, err);
            at += rank ? e->shape[dim] : 1;
            continue;
        }
        uint64_t h = e->shape[0] / 2;   /* this rank's [gate_r; up_r]: gate_r joins the gates, up_r the ups */
        rc = add_piece(&pieces[2 * k], box, box + rank, e, 0, at, 0, h, b, name, err);
        if (!rc)
            rc = add_piece(&pieces[2 * k + 1], box + 2 * rank, box + 3 * rank, e, 0, gates + at, h, h, b, name, err);
        at += h;
    }
    if (how != MEGATRON_REPLICATED && rank)
        shape[dim] = how == MEGATRON_GATE_UP ? 2 * gates : at;
    if (!rc)
        rc = source_add_pieces(w->src, name, parts[0]->pub.dtype, rank, shape, pieces, total, err);
    free(pieces);
    free(boxes);
    return rc;
}

int megatron_join(const struct megatron_walk *w, const char *name, const struct tensor_entry *const *parts,
                  const long *files, size_t count, enum megatron_split how, ckpt_error *err)
{
    if (w->base)
        return declare(w, name, parts, files, count, how, err);
    const struct ckpt_source *first = w->ranks[files[0]].src;
    int rc = CKPT_OK;
    for (size_t k = 0; k < count && !rc; k++) {
        const struct ckpt_source *s = w->ranks[files[k]].src;
        rc = megatron_check_part(s, first, parts[k], parts[0], how, name, err);
        if (!rc && k && how == MEGATRON_REPLICATED)
            rc = megatron_compare(first, parts[0], s, parts[k], name, err);
    }
    return rc;
}
