/*
 * megatron_merge.c: the tensors of Megatron-LM's tensor-parallel ranks and
 * pipeline stages joined into full tensors; see megatron.h.
 *
 * Which tensors are split, and how, follows Megatron's parallel layers:
 * ColumnParallelLinear (fused QKV, fc1, the output layer, MLA's up
 * projections, MTP's eh_proj) and the vocabulary-parallel embedding split
 * their output rows, so the ranks' weights and biases stack on dim 0; a
 * fused QKV rank holds whole query groups, so stacking is already the
 * global layout.  With SwiGLU, rank r's fc1 is [gate_r; up_r], and the full
 * tensor is every gate half then every up half: two pieces per rank.
 * RowParallelLinear (the attention output projection, fc2) splits its input
 * columns: weights stack on dim 1, the bias is whole on every rank.  MLA's
 * down projections were column-parallel up to core 0.13 and are replicated
 * since: the per-file shape says which.  A plain torch Linear (BERT's
 * pooler.dense, lm_head.dense) is whole on every rank, as Megatron's own
 * loader takes it from rank 0.  Everything else is replicated.
 *
 * With expert parallelism a stage has several files per tensor-parallel
 * rank, holding the same dense shard: the first file of each rank (lowest
 * expert rank) gives it, the others are checked to hold the same tensors
 * with the same shapes, and the router, small and decisive, is compared
 * byte for byte in every file.  A tensor outside the layers (the embedding,
 * which the last stage builds again for its MTP layers) may appear in
 * several stages: the copies are compared and declared once.
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

static const char *const column_modules[] = {
    "linear_qkv", "query_key_value", "linear_fc1", "dense_h_to_4h", "output_layer", "word_embeddings",
    "word_embeddings_for_head", "linear_q_proj", "linear_q_up_proj", "linear_kv_up_proj", "eh_proj",
};
static const char *const row_modules[] = {"linear_proj", "linear_fc2", "dense_4h_to_h"};
/* legacy Megatron-LM's `dense` is row-parallel only as an attention's output projection */
static const char *const attention_modules[] = {"self_attention", "inter_attention", "cross_attention"};

static bool part_in(const char *part, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncmp(part, list[i], len) == 0)
            return true;
    return false;
}

#define IN(part, len, list) part_in(part, len, list, sizeof list / sizeof list[0])

/* The dotted part of `name` that ends just before `end`; its length in *len. */
static const char *part_before(const char *name, const char *end, size_t *len)
{
    const char *start = end;
    while (start > name && start[-1] != '.')
        start--;
    *len = (size_t)(end - start);
    return start;
}

/* MLA's down projections: whole (replicated, core >= 0.14) or a 1/TP share of the rows (core <= 0.13). */
static int down_projection(const struct megatron_walk *w, const char *name, const struct tensor_entry *e, long full,
                           enum megatron_split *how, ckpt_error *err)
{
    uint64_t rows = e->pub.rank ? e->shape[0] : 0;
    if (full > 0 && rows == (uint64_t)full) {
        *how = MEGATRON_REPLICATED;
        return CKPT_OK;
    }
    if (full > 0 && rows * (uint64_t)w->lay->tp == (uint64_t)full) {
        *how = MEGATRON_COLUMN;
        return CKPT_OK;
    }
    return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s has %llu rows, neither the %ld the args give nor a 1/%ld "
                     "share of them", w->src->path, name, (unsigned long long)rows, full, w->lay->tp);
}

/* How `name` (module path + parameter), whose rank-0 part is `e`, is split over the tensor-parallel ranks. */
static int split_of(const struct megatron_walk *w, const char *name, const struct tensor_entry *e,
                    enum megatron_split *how, ckpt_error *err)
{
    const char *param = strrchr(name, '.');
    *how = MEGATRON_REPLICATED;
    if (!param || (strcmp(param, ".weight") != 0 && strcmp(param, ".bias") != 0))
        return CKPT_OK;
    size_t len, parent_len;
    const char *module = part_before(name, param, &len);
    const char *parent = module > name ? part_before(name, module - 1, &parent_len) : module;
    if (module == parent)
        parent_len = 0;
    bool weight = strcmp(param, ".weight") == 0;
    if ((len == 18 && strncmp(module, "linear_q_down_proj", len) == 0) ||
        (len == 19 && strncmp(module, "linear_kv_down_proj", len) == 0))
        return down_projection(w, name, e, len == 18 ? w->lay->q_down_rows : w->lay->kv_down_rows, how, err);
    if (IN(module, len, column_modules)) {
        bool fc1 = (len == 10 && strncmp(module, "linear_fc1", len) == 0) ||
                   (len == 13 && strncmp(module, "dense_h_to_4h", len) == 0);
        *how = w->lay->swiglu && fc1 ? MEGATRON_GATE_UP : MEGATRON_COLUMN;
    } else if (IN(module, len, row_modules) ||
               (len == 5 && strncmp(module, "dense", 5) == 0 && IN(parent, parent_len, attention_modules))) {
        *how = weight ? MEGATRON_ROW : MEGATRON_REPLICATED;
    }
    return CKPT_OK;
}

/* The files of the stage that are not the first of their tensor-parallel rank hold the same tensor. */
static int check_copies(const struct megatron_walk *w, const char *local, const struct tensor_entry *const *parts,
                        const long *files, ckpt_error *err)
{
    bool router = strstr(local, ".mlp.router.") != NULL;   /* small, and decisive for routing: compared everywhere */
    for (size_t i = 0; i < w->lay->grid; i++) {
        const struct megatron_rank *r = &w->ranks[i];
        if (!r->src || (long)i == files[r->tp])
            continue;
        const struct ckpt_source *first = w->ranks[files[r->tp]].src;
        const struct tensor_entry *e = megatron_entry(w, (long)i, files[r->tp], local, err);
        int rc = e ? megatron_check_part(r->src, first, e, parts[r->tp], MEGATRON_REPLICATED, local, err)
                   : CKPT_ERR_FORMAT;
        if (!rc && router)
            rc = megatron_compare(first, parts[r->tp], r->src, e, local, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* An earlier stage holding the same tensor outside the layers (the embedding, again for MTP), or -1. */
static long earlier_copy(const struct megatron_walk *w, const char *local)
{
    if (strstr(local, "layers."))
        return -1;
    for (long q = 0; q < w->stage; q++) {
        const struct megatron_rank *r = w->lay->ranks + (size_t)q * w->lay->grid;
        for (size_t i = 0; i < w->lay->grid; i++)
            if (r[i].src && r[i].tp == 0)
                if (source_lookup(r[i].src, local) != SIZE_MAX)
                    return q;
    }
    return -1;
}

/* Stage `q`'s copy of a tensor outside the layers must hold the same bytes, rank by rank. */
static int compare_stages(const struct megatron_walk *w, long q, const char *local,
                          const struct tensor_entry *const *parts, const long *files, ckpt_error *err)
{
    struct megatron_walk earlier = *w;
    earlier.stage = q;
    earlier.ranks = w->lay->ranks + (size_t)q * w->lay->grid;
    for (long t = 0; t < w->lay->tp; t++) {
        long f = megatron_dense_rank(&earlier, t);
        const struct tensor_entry *e = megatron_entry(&earlier, f, f, local, err);
        const struct ckpt_source *mine = w->ranks[files[t]].src;
        int rc = e ? megatron_check_part(earlier.ranks[f].src, mine, e, parts[t], MEGATRON_REPLICATED, local, err)
                   : CKPT_ERR_FORMAT;
        if (!rc)
            rc = megatron_compare(earlier.ranks[f].src, e, mine, parts[t], local, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* One dense tensor of the stage: checked (and replicas compared) in the first pass, declared in the second. */
static int merge_dense(const struct megatron_walk *w, const char *local, const struct tensor_entry **parts, long *files,
                       ckpt_error *err)
{
    char name[MEGATRON_MAX_NAME];
    long tp = w->lay->tp;
    int rc = megatron_global_name(w, local, name, err);
    for (long t = 0; t < tp && !rc; t++) {
        files[t] = megatron_dense_rank(w, t);
        if (!(parts[t] = megatron_entry(w, files[t], files[0], local, err)))
            rc = CKPT_ERR_FORMAT;
    }
    enum megatron_split how;
    if (!rc)
        rc = split_of(w, name, parts[0], &how, err);
    long q = rc ? -1 : earlier_copy(w, local);
    if (!rc && q >= 0)
        return w->base ? CKPT_OK : compare_stages(w, q, local, parts, files, err);
    if (!rc)
        rc = megatron_join(w, name, parts, files, (size_t)tp, how, err);
    if (!rc && !w->base)
        rc = check_copies(w, local, parts, files, err);
    return rc;
}

/* Every file of a stage holds the same dense tensors as the first: one it lacks is refused here. */
static int check_extra(const struct megatron_walk *w, ckpt_error *err)
{
    const struct ckpt_source *first = w->ranks[megatron_dense_rank(w, 0)].src;
    for (size_t f = 0; f < w->lay->grid; f++) {
        const struct ckpt_source *s = w->ranks[f].src;
        for (size_t i = 0; s && s != first && i < s->tensor_count; i++) {
            const char *name = s->tensors[i].pub.name;
            if (megatron_is_weight(name) && !megatron_is_expert(name) && source_lookup(first, name) == SIZE_MAX)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds tensor %s, which %s lacks", s->path, name,
                                 first->path);
        }
    }
    return CKPT_OK;
}

static int walk_stage(struct megatron_walk *w, ckpt_error *err)
{
    long tp = w->lay->tp;
    const struct tensor_entry **parts = calloc((size_t)tp, sizeof *parts);
    long *files = calloc((size_t)tp, sizeof *files);
    int rc = parts && files ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", w->src->path);
    const struct ckpt_source *first = w->ranks[megatron_dense_rank(w, 0)].src;
    if (!rc && !w->base)
        rc = check_extra(w, err);
    for (size_t i = 0; i < first->tensor_count && !rc; i++) {
        const char *name = first->tensors[i].pub.name;
        if (megatron_is_weight(name) && !megatron_is_expert(name))
            rc = merge_dense(w, name, parts, files, err);
    }
    if (!rc)
        rc = megatron_merge_experts(w, err);
    free(parts);
    free(files);
    return rc;
}

static int walk_all(struct megatron_walk *w, ckpt_error *err)
{
    int rc = CKPT_OK;
    for (long p = 0; p < w->lay->pp && !rc; p++) {
        w->stage = p;
        w->ranks = w->lay->ranks + (size_t)p * w->lay->grid;
        rc = walk_stage(w, err);
    }
    return rc;
}

int megatron_merge(struct ckpt_source *src, const struct megatron_layout *lay, ckpt_error *err)
{
    struct megatron_walk w = {src, lay, NULL, 0, NULL};
    int rc = walk_all(&w, err);
    size_t n = lay->grid * (size_t)lay->pp;
    uint32_t *base = rc ? NULL : calloc(n, sizeof *base);
    if (!rc && !base)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", src->path);
    for (size_t i = 0; i < n && !rc; i++)
        if (lay->ranks[i].src)
            rc = source_adopt_files(src, lay->ranks[i].src, &base[i], err);
    w.base = base;
    if (!rc)
        rc = walk_all(&w, err);
    free(base);
    return rc;
}
