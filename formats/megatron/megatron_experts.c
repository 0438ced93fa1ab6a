/*
 * megatron_experts.c: the routed experts of a legacy Megatron-LM MoE
 * checkpoint, joined over their expert-TP ranks and declared under their
 * global index; see megatron.h.
 *
 * Each file holds only its expert rank's E/EP local experts, numbered from
 * 0; global expert ep * E/EP + i is local expert i of expert rank ep
 * (Megatron's moe_layer.py).  The file names them in one of three forms,
 * after the args' moe_grouped_gemm and moe_use_legacy_grouped_gemm:
 *
 *   SequentialMLP   ...mlp.experts.local_experts.{i}.linear_fc1.weight   [2F/ETP, H]
 *   TEGroupedMLP    ...mlp.experts.linear_fc1.weight{i}                   [2F/ETP, H]
 *   GroupedMLP      ...mlp.experts.weight1 [H, E_l*2F/ETP], weight2 [E_l*F/ETP, H]
 *
 * GroupedMLP (core <= 0.16) keeps every local expert in one tensor that
 * Megatron reads as weight1.view(E_l, H, -1): expert i's fc1 is the i-th
 * contiguous [H, 2F/ETP] block of its memory, transposed; weight2 likewise
 * gives fc2 = block i of weight2.view(E_l, -1, H), transposed.  Those
 * blocks are declared as strided views, never copied.  Whatever the form,
 * expert tensors split over the expert-TP ranks exactly as a dense MLP
 * over TP (fc1 per rank as [gate_r; up_r], fc2 on dim 1), and are declared
 * as SequentialMLP names them with the global index:
 * ...mlp.experts.local_experts.{G}.linear_fc1.weight.
 */
#include "megatron.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPERTS ".mlp.experts."
#define GROUPED (-1)   /* a GroupedMLP tensor: every local expert */
#define SINGLE (-2)    /* one grouped weight without an index: refused */

struct expert_name {
    size_t prefix;      /* length of the name through "mlp.experts." */
    long local;         /* the local expert, GROUPED or SINGLE */
    char rest[32];      /* the expert's own parameter: "linear_fc1.weight", "linear_fc2.bias" */
};

/* Digits making the whole of s[0, len), as a number below 2^31; false otherwise. */
static bool index_of(const char *s, size_t len, long *out)
{
    *out = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || *out > (1L << 27))
            return false;
        *out = *out * 10 + (s[i] - '0');
    }
    return len > 0;
}

/* The TE form's "linear_fcK.weightI" / "linear_fcK.biasI". */
static bool parse_grouped_linear(const char *s, struct expert_name *x)
{
    if (strncmp(s, "linear_fc1.", 11) != 0 && strncmp(s, "linear_fc2.", 11) != 0)
        return false;
    const char *param = s + 11;
    size_t stem = strncmp(param, "weight", 6) == 0 ? 6 : strncmp(param, "bias", 4) == 0 ? 4 : 0;
    if (!stem)
        return false;
    size_t digits = strlen(param + stem);
    if (digits == 0)
        x->local = SINGLE;
    else if (!index_of(param + stem, digits, &x->local))
        return false;
    snprintf(x->rest, sizeof x->rest, "%.11s%.*s", s, (int)stem, param);
    return true;
}

static bool parse_expert(const char *name, struct expert_name *x)
{
    const char *at = strstr(name, EXPERTS);
    if (!at)
        return false;
    const char *s = at + strlen(EXPERTS);
    x->prefix = (size_t)(s - name);
    if (strncmp(s, "local_experts.", 14) == 0) {
        const char *digits = s + 14, *dot = strchr(digits, '.');
        if (!dot || !index_of(digits, (size_t)(dot - digits), &x->local) || strlen(dot + 1) >= sizeof x->rest)
            return false;
        strcpy(x->rest, dot + 1);
        return true;
    }
    if (strcmp(s, "weight1") == 0 || strcmp(s, "weight2") == 0) {
        x->local = GROUPED;
        strcpy(x->rest, s[6] == '1' ? "linear_fc1.weight" : "linear_fc2.weight");
        return true;
    }
    return parse_grouped_linear(s, x);
}

bool megatron_is_expert(const char *name)
{
    struct expert_name x;
    return parse_expert(name, &x);
}

/* How an expert's own parameter splits over the expert-TP ranks: as the dense MLP's over TP. */
static enum megatron_split expert_split(const struct megatron_walk *w, const char *rest)
{
    if (strncmp(rest, "linear_fc1.", 11) == 0)
        return w->lay->swiglu ? MEGATRON_GATE_UP : MEGATRON_COLUMN;
    if (strcmp(rest, "linear_fc2.weight") == 0)
        return MEGATRON_ROW;
    return MEGATRON_REPLICATED;
}

/* The name of local expert `i`'s tensor in the form of `name` (which is local expert x->local's). */
static int local_name(const char *name, const struct expert_name *x, long i, char *out, ckpt_error *err)
{
    const char *s = name + x->prefix;
    int n;
    if (strncmp(s, "local_experts.", 14) == 0)
        n = snprintf(out, MEGATRON_MAX_NAME, "%.*slocal_experts.%ld.%s", (int)x->prefix, name, i, x->rest);
    else if (x->local == GROUPED)
        n = snprintf(out, MEGATRON_MAX_NAME, "%s", name);
    else
        n = snprintf(out, MEGATRON_MAX_NAME, "%.*s%s%ld", (int)x->prefix, name, x->rest, i);
    if (n < 0 || n >= MEGATRON_MAX_NAME)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "tensor name too long: %s", name);
    return CKPT_OK;
}

/* Local expert i's block of a GroupedMLP weight, as a strided view of it. */
struct block {
    struct tensor_entry e;
    uint64_t shape[2];
    int64_t strides[2];
};

static int grouped_block(const struct megatron_walk *w, long file, const struct tensor_entry *whole, bool fc1,
                         long i, struct block *b, ckpt_error *err)
{
    const char *path = w->ranks[file].src->path;
    uint64_t local = (uint64_t)(w->lay->experts / w->lay->ep);
    if (whole->pub.rank != 2 || whole->strides || whole->shape[fc1 ? 1 : 0] % local)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: GroupedMLP weight%d %s a contiguous matrix whose %s divide by "
                         "its %llu local experts", path, fc1 ? 1 : 2, "is not", fc1 ? "columns" : "rows",
                         (unsigned long long)local);
    uint64_t hidden = whole->shape[fc1 ? 0 : 1], width = whole->shape[fc1 ? 1 : 0] / local, skip;
    *b = (struct block){.e = *whole};
    /* weight1.view(E_l, H, X)[i] transposed is [X, H]; weight2.view(E_l, Y, H)[i] transposed is [H, Y] */
    b->shape[0] = fc1 ? width : hidden;
    b->shape[1] = fc1 ? hidden : width;
    b->strides[0] = 1;
    b->strides[1] = (int64_t)(fc1 ? width : hidden);
    if (!ckpt_mul_u64((uint64_t)i, hidden * width, &skip) ||
        !ckpt_add_u64(b->e.view.elem_offset, skip, &b->e.view.elem_offset))
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: GroupedMLP weight too large", path);
    b->e.shape = b->shape;
    b->e.strides = b->strides;
    b->e.view.strides = b->strides;
    b->e.pub.shape = b->shape;
    b->e.pub.nbytes = hidden * width * ckpt_dtype_size(whole->pub.dtype);
    return CKPT_OK;
}

/* Expert-TP shard k's part of local expert i of expert rank ep, from the first file holding it. */
static const struct tensor_entry *expert_part(const struct megatron_walk *w, long file, long first, const char *local,
                                              const struct expert_name *x, long i, struct block *b, ckpt_error *err)
{
    const struct tensor_entry *e = megatron_entry(w, file, first, local, err);
    if (!e || x->local != GROUPED)
        return e;
    return grouped_block(w, file, e, x->rest[9] == '1', i, b, err) ? NULL : &b->e;
}

/* Other files holding the same expert shard (the grid repeats them when TP > ETP) hold the same tensor. */
static int check_copies(const struct megatron_walk *w, long ep, long etp, long file, const char *local,
                        const struct tensor_entry *part, ckpt_error *err)
{
    for (size_t f = 0; f < w->lay->grid && !w->base; f++) {
        const struct megatron_rank *r = &w->ranks[f];
        if (!r->src || (long)f == file || r->ep != ep || r->etp != etp)
            continue;
        const struct tensor_entry *e = megatron_entry(w, (long)f, file, local, err);
        if (!e)
            return CKPT_ERR_FORMAT;
        if (e->pub.dtype != part->pub.dtype || e->pub.nbytes != part->pub.nbytes)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s and %s: expert tensor %s differs in type or size",
                             w->ranks[file].src->path, r->src->path, local);
    }
    return CKPT_OK;
}

/* Local expert i of every expert rank: joined over the expert-TP ranks, named by its global index. */
static int merge_local(const struct megatron_walk *w, const char *name, const struct expert_name *x, long i,
                       const struct tensor_entry **parts, long *files, struct block *blocks, ckpt_error *err)
{
    const struct megatron_layout *lay = w->lay;
    char local[MEGATRON_MAX_NAME], full[MEGATRON_MAX_NAME], global[MEGATRON_MAX_NAME];
    int rc = local_name(name, x, i, local, err);
    for (long ep = 0; ep < lay->ep && !rc; ep++) {
        for (long k = 0; k < lay->etp && !rc; k++) {
            files[k] = megatron_expert_rank(w, ep, k);
            if (!(parts[k] = expert_part(w, files[k], files[0], local, x, i, &blocks[k], err)))
                rc = CKPT_ERR_FORMAT;
            if (!rc)
                rc = check_copies(w, ep, k, files[k], local, parts[k], err);
        }
        long g = ep * (lay->experts / lay->ep) + i;
        int n = rc ? 0 : snprintf(full, sizeof full, "%.*slocal_experts.%ld.%s", (int)x->prefix, name, g, x->rest);
        if (!rc && (n < 0 || n >= (int)sizeof full))
            rc = ckpt_fail(err, CKPT_ERR_LIMIT, "tensor name too long: %s", name);
        if (!rc)
            rc = megatron_global_name(w, full, global, err);
        if (!rc)
            rc = megatron_join(w, global, parts, files, (size_t)lay->etp, expert_split(w, x->rest), err);
    }
    return rc;
}

/* Every local index 0..E_l-1 must be there, for each expert tensor of the first expert file. */
static int check_indexes(const struct megatron_walk *w, long first, const char *name, const struct expert_name *x,
                         ckpt_error *err)
{
    const struct ckpt_source *s = w->ranks[first].src;
    long count = w->lay->experts / w->lay->ep;
    char other[MEGATRON_MAX_NAME];
    if (x->local == SINGLE)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: tensor %s is one grouped weight for every expert "
                         "(moe_single_grouped_weight), which is not supported", s->path, name);
    if (x->local == GROUPED)
        return CKPT_OK;
    if (x->local >= count)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: local expert %ld, but the args give %ld experts per "
                         "expert-parallel rank", s->path, name, x->local, count);
    /* expert 0's tensor vouches for every index, every other one for expert 0's */
    for (long i = x->local ? 0 : 1; i < (x->local ? 1 : count); i++) {
        int rc = local_name(name, x, i, other, err);
        if (rc)
            return rc;
        if (source_lookup(s, other) == SIZE_MAX)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds %s but not %s", s->path, name, other);
    }
    return CKPT_OK;
}

/* An expert tensor in another expert file that the first one lacks is refused. */
static int check_extra(const struct megatron_walk *w, long first, ckpt_error *err)
{
    const struct ckpt_source *s0 = w->ranks[first].src;
    for (size_t f = 0; f < w->lay->grid; f++) {
        const struct ckpt_source *s = w->ranks[f].src;
        for (size_t i = 0; s && s != s0 && i < s->tensor_count; i++) {
            const char *name = s->tensors[i].pub.name;
            if (megatron_is_weight(name) && megatron_is_expert(name) && source_lookup(s0, name) == SIZE_MAX)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds tensor %s, which %s lacks", s->path, name, s0->path);
        }
    }
    return CKPT_OK;
}

int megatron_merge_experts(const struct megatron_walk *w, ckpt_error *err)
{
    const struct megatron_layout *lay = w->lay;
    long first = megatron_expert_rank(w, 0, 0);
    const struct ckpt_source *s = w->ranks[first >= 0 ? first : megatron_dense_rank(w, 0)].src;
    struct expert_name x;
    if (!lay->experts) {
        for (size_t i = 0; i < s->tensor_count; i++)
            if (megatron_is_weight(s->tensors[i].pub.name) && parse_expert(s->tensors[i].pub.name, &x))
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is a routed expert's, but the args give no "
                                 "num_experts", s->path, s->tensors[i].pub.name);
        return CKPT_OK;
    }
    const struct tensor_entry **parts = calloc((size_t)lay->etp, sizeof *parts);
    long *files = calloc((size_t)lay->etp, sizeof *files);
    struct block *blocks = calloc((size_t)lay->etp, sizeof *blocks);
    int rc = parts && files && blocks ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", s->path);
    if (!rc && !w->base)
        rc = check_extra(w, first, err);
    for (size_t t = 0; t < s->tensor_count && !rc; t++) {
        const char *name = s->tensors[t].pub.name;
        if (!megatron_is_weight(name) || !parse_expert(name, &x))
            continue;
        rc = w->base ? CKPT_OK : check_indexes(w, first, name, &x, err);
        if (x.local != GROUPED) {
            if (!rc)
                rc = merge_local(w, name, &x, x.local, parts, files, blocks, err);
            continue;
        }
        for (long i = 0; i < lay->experts / lay->ep && !rc; i++)
            rc = merge_local(w, name, &x, i, parts, files, blocks, err);
    }
    free(parts);
    free(files);
    free(blocks);
    return rc;
}
