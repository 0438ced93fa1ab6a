/*
 * megatron_merge.c: the tensors of Megatron-LM's tensor-parallel ranks and
 * pipeline stages joined into full tensors; see megatron.h.
 *
 * Which tensors are split, and how, follows Megatron's parallel layers:
 * ColumnParallelLinear (fused QKV, fc1, the output layer) and the
 * vocabulary-parallel embedding split their output rows, so the ranks'
 * weights and biases stack on dim 0; a fused QKV rank holds whole query
 * groups, so stacking is already the global layout.  With SwiGLU, rank r's
 * fc1 is [gate_r; up_r], and the full tensor is every gate half then every
 * up half: two pieces per rank.  RowParallelLinear (the attention output
 * projection, fc2) splits its input columns: weights stack on dim 1, the
 * bias is whole on every rank.  Everything else is replicated.
 *
 * The work runs twice over the same walk: first every check (and the
 * byte comparison of replicated tensors) while each rank's files are still
 * its own, then, once the files are adopted, the declarations.
 */
#include "megatron.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_PREFIX "model."
#define COMPARE_BLOCK (1u << 20)
#define MAX_NAME 4096

enum split { REPLICATED, COLUMN, ROW, GATE_UP };

static const char *const column_modules[] = {
    "linear_qkv", "query_key_value", "linear_fc1", "dense_h_to_4h", "output_layer", "word_embeddings",
    "word_embeddings_for_head",
};
static const char *const row_modules[] = {"linear_proj", "dense", "linear_fc2", "dense_4h_to_h"};

static bool module_in(const char *module, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncmp(module, list[i], len) == 0)
            return true;
    return false;
}

/* How `name` (module path + parameter) is split over the tensor-parallel ranks. */
static enum split split_of(const char *name, bool swiglu)
{
    const char *param = strrchr(name, '.');
    if (!param || (strcmp(param, ".weight") != 0 && strcmp(param, ".bias") != 0))
        return REPLICATED;
    const char *module = param;
    while (module > name && module[-1] != '.')
        module--;
    size_t len = (size_t)(param - module);
    if (module_in(module, len, column_modules, sizeof column_modules / sizeof column_modules[0])) {
        bool fc1 = (len == 10 && strncmp(module, "linear_fc1", len) == 0) ||
                   (len == 13 && strncmp(module, "dense_h_to_4h", len) == 0);
        return swiglu && fc1 ? GATE_UP : COLUMN;
    }
    if (module_in(module, len, row_modules, sizeof row_modules / sizeof row_modules[0]))
        return strcmp(param, ".weight") == 0 ? ROW : REPLICATED;
    return REPLICATED;
}

/* A model weight of a rank file: under `model.`, and not Transformer Engine's `_extra_state`. */
static bool is_weight(const char *name)
{
    const char *last = strrchr(name, '.');
    return strncmp(name, MODEL_PREFIX, strlen(MODEL_PREFIX)) == 0 && !(last && strncmp(last, "._extra_state", 13) == 0);
}

/* The global name: `model.` dropped, a stage-local `decoder.layers.N` / `encoder.layers.N` made global. */
static int global_name(const struct ckpt_source *s, const char *name, long stage, const struct megatron_layout *lay,
                       char *out, ckpt_error *err)
{
    name += strlen(MODEL_PREFIX);
    const char *at = strstr(name, "decoder.layers.");
    if (!at)
        at = strstr(name, "encoder.layers.");
    if (!at || (at != name && at[-1] != '.')) {
        if (snprintf(out, MAX_NAME, "%s", name) >= MAX_NAME)
            return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor name too long", s->path);
        return CKPT_OK;
    }
    const char *digits = at + strlen("decoder.layers."), *end = digits;
    long local = 0, per = lay->layers / lay->pp;
    while (*end >= '0' && *end <= '9' && local <= per)
        local = local * 10 + (*end++ - '0');
    if (end == digits || *end != '.' || local >= per)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: layer number outside the stage's %ld layers", s->path,
                         name, per);
    int n = snprintf(out, MAX_NAME, "%.*s%ld%s", (int)(digits - name), name, local + stage * per, end);
    if (n < 0 || n >= MAX_NAME)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor name too long", s->path);
    return CKPT_OK;
}

/* Rank file `s`'s entry for `name` (aliases followed), or NULL with the refusal in err. */
static const struct tensor_entry *entry_of(const struct ckpt_source *s, const struct ckpt_source *first,
                                           const char *name, ckpt_error *err)
{
    size_t i = source_lookup(s, name);
    if (i == SIZE_MAX) {
        ckpt_fail(err, CKPT_ERR_FORMAT, "%s: lacks tensor %s, which %s holds", s->path, name, first->path);
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

/* Replicated tensors must hold the same bytes on every rank: compared a block of lines at a time. */
static int compare_replicas(const struct ckpt_source *a, const struct tensor_entry *ea, const struct ckpt_source *b,
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
            rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                           "%s and %s: replicated tensor %s differs between tensor-parallel ranks", a->path, b->path,
                           name);
    }
    free(buf);
    return rc;
}

/* Checks rank t's part of `name` against rank 0's (type, rank, the dimensions that are not split). */
static int check_part(const struct ckpt_source *s, const struct ckpt_source *first, const struct tensor_entry *e,
                      const struct tensor_entry *e0, enum split how, const char *name, ckpt_error *err)
{
    uint32_t dim = how == ROW ? 1 : 0;
    if (e->pub.dtype != e0->pub.dtype || e->pub.rank != e0->pub.rank)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s and %s: tensor %s has another type or rank", first->path, s->path,
                         name);
    if (how != REPLICATED && e->pub.rank <= dim)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s has no dimension %u to split", s->path, name, dim);
    if (how == GATE_UP && e->shape[0] % 2)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: SwiGLU tensor %s has an odd row count %llu", s->path, name,
                         (unsigned long long)e->shape[0]);
    for (uint32_t d = 0; d < e->pub.rank; d++)
        if (e->shape[d] != e0->shape[d] && (how == REPLICATED || d != dim))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s and %s: tensor %s differs in dimension %u (%llu, %llu)",
                             first->path, s->path, name, d, (unsigned long long)e0->shape[d],
                             (unsigned long long)e->shape[d]);
    return CKPT_OK;
}

struct walk {
    struct ckpt_source *src;
    struct ckpt_source *const *ranks;
    const struct megatron_layout *lay;
    const uint32_t *base;   /* NULL in the checking pass; then each rank's first adopted file */
    bool swiglu;
};

/* The piece of rank t holding rows [row, row + rows) of its part (or all of it), placed at `at` along dim. */
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

/* Declares `name` from the ranks' parts `parts[t]` stacked along the split dimension (rank 0's when replicated). */
static int declare(const struct walk *w, long stage, const struct tensor_entry **parts, enum split how,
                   const char *name, ckpt_error *err)
{
    size_t tp = how == REPLICATED ? 1 : (size_t)w->lay->tp, per = how == GATE_UP ? 2 : 1, count = tp * per;
    uint32_t rank = parts[0]->pub.rank, dim = how == ROW ? 1 : 0;
    const uint32_t *base = w->base + stage * w->lay->tp;
    struct tensor_piece *pieces = calloc(count, sizeof *pieces);
    uint64_t *boxes = calloc((2 * count + 1) * (rank ? rank : 1), sizeof *boxes);
    if (!pieces || !boxes) {
        free(pieces);
        free(boxes);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "tensor %s: out of memory", name);
    }
    uint64_t *shape = boxes + 2 * count * rank, at = 0, gates = 0;
    memcpy(shape, parts[0]->shape, rank * sizeof *shape);
    for (size_t t = 0; t < tp && how == GATE_UP; t++)
        gates += parts[t]->shape[0] / 2;
    int rc = CKPT_OK;
    for (size_t t = 0; t < tp && !rc; t++) {
        const struct tensor_entry *e = parts[t];
        uint64_t *box = boxes + 2 * t * per * rank;
        if (how != GATE_UP) {
            rc = add_piece(&pieces[t], box, box + rank, e, dim, at, 0, UINT64_MAX, base[t], name, err);
            at += rank ? e->shape[dim] : 1;
            continue;
        }
        uint64_t h = e->shape[0] / 2;   /* this rank's [gate_r; up_r]: gate_r joins the gates, up_r the ups */
        rc = add_piece(&pieces[2 * t], box, box + rank, e, 0, at, 0, h, base[t], name, err);
        if (!rc)
            rc = add_piece(&pieces[2 * t + 1], box + 2 * rank, box + 3 * rank, e, 0, gates + at, h, h, base[t], name,
                           err);
        at += h;
    }
    if (how != REPLICATED && rank)
        shape[dim] = how == GATE_UP ? 2 * gates : at;
    if (!rc)
        rc = source_add_pieces(w->src, name, parts[0]->pub.dtype, rank, shape, pieces, count, err);
    free(pieces);
    free(boxes);
    return rc;
}

/* One tensor of stage `stage`: checked (and replicas compared) in the first pass, declared in the second. */
static int merge_one(const struct walk *w, long stage, const char *local, const struct tensor_entry **parts,
                     ckpt_error *err)
{
    long tp = w->lay->tp;
    struct ckpt_source *const *ranks = w->ranks + stage * tp;
    char name[MAX_NAME];
    int rc = global_name(ranks[0], local, stage, w->lay, name, err);
    enum split how = split_of(name, w->swiglu);
    for (long t = 0; t < tp && !rc; t++)
        if (!(parts[t] = entry_of(ranks[t], ranks[0], local, err)))
            rc = CKPT_ERR_FORMAT;
    for (long t = 1; t < tp && !rc && !w->base; t++) {
        rc = check_part(ranks[t], ranks[0], parts[t], parts[0], how, local, err);
        if (!rc && how == REPLICATED)
            rc = compare_replicas(ranks[0], parts[0], ranks[t], parts[t], local, err);
    }
    if (!rc && !w->base && how != REPLICATED)
        rc = check_part(ranks[0], ranks[0], parts[0], parts[0], how, local, err);
    if (!rc && w->base)
        rc = declare(w, stage, parts, how, name, err);
    return rc;
}

/* Every rank of a stage holds the same weights: one that rank 0 lacks is refused here. */
static int check_extra(struct ckpt_source *const *ranks, long tp, ckpt_error *err)
{
    for (long t = 1; t < tp; t++)
        for (size_t i = 0; i < ranks[t]->tensor_count; i++) {
            const char *name = ranks[t]->tensors[i].pub.name;
            if (is_weight(name) && source_lookup(ranks[0], name) == SIZE_MAX)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds tensor %s, which %s lacks", ranks[t]->path, name,
                                 ranks[0]->path);
        }
    return CKPT_OK;
}

static int walk_all(const struct walk *w, ckpt_error *err)
{
    long tp = w->lay->tp;
    const struct tensor_entry **parts = calloc((size_t)tp, sizeof *parts);
    int rc = parts ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", w->src->path);
    for (long p = 0; p < w->lay->pp && !rc; p++) {
        const struct ckpt_source *first = w->ranks[p * tp];
        if (!w->base)
            rc = check_extra(w->ranks + p * tp, tp, err);
        for (size_t i = 0; i < first->tensor_count && !rc; i++)
            if (is_weight(first->tensors[i].pub.name))
                rc = merge_one(w, p, first->tensors[i].pub.name, parts, err);
    }
    free(parts);
    return rc;
}

static bool swiglu_of(const struct ckpt_source *s)
{
    for (size_t i = 0; i < s->object_count; i++)
        if (strcmp(s->objects[i].name, "args.swiglu") == 0)
            return strcmp(s->objects[i].kind, "bool") == 0 && strcmp(s->objects[i].value, "True") == 0;
    return false;
}

int megatron_merge(struct ckpt_source *src, struct ckpt_source *const *ranks, const struct megatron_layout *lay,
                   ckpt_error *err)
{
    struct walk w = {src, ranks, lay, NULL, swiglu_of(ranks[0])};
    int rc = walk_all(&w, err);
    size_t n = (size_t)(lay->tp * lay->pp);
    uint32_t *base = rc ? NULL : calloc(n, sizeof *base);
    if (!rc && !base)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", src->path);
    for (size_t i = 0; i < n && !rc; i++)
        rc = source_adopt_files(src, ranks[i], &base[i], err);
    w.base = base;
    if (!rc)
        rc = walk_all(&w, err);
    free(base);
    return rc;
}
