/*
 * plan.c: deciding what convert writes, before anything is written.
 *
 * For each source tensor the rules give an output name, element type and
 * layout; fp8 weights with block scales are marked for dequantization and
 * their scales dropped; then stored tensors are packed into shards in source
 * order, each at a known offset.  Because the whole plan is fixed first,
 * execution can write any tensor at any time, and a dry run shows exactly
 * what a real run will do.
 */
#include "plan.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"
#include "libckpt/common/options.h"
#include "libckpt/catalog/source.h"
#include "libckpt/kernels/kernels.h"
#include "quant_select.h"
#include "rules.h"
#include "source_config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCALE_SUFFIX "_scale_inv"

void ckpt_convert_options_default(ckpt_convert_options *opts)
{
    *opts = (ckpt_convert_options){.size = sizeof *opts, .target = CKPT_TARGET_NONE, .dtype = CKPT_FLOAT_TARGET,
                                   .overflow = CKPT_OVERFLOW_SATURATE, .max_shard_bytes = 5000000000ull};
}

static bool is_float(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DTYPE_F16:
    case CKPT_DTYPE_BF16:
    case CKPT_DTYPE_F32:
    case CKPT_DTYPE_F64:
    case CKPT_DTYPE_F8_E4M3:
    case CKPT_DTYPE_F8_E5M2:
        return true;
    default:
        return false;
    }
}

static bool is_fp8(ckpt_dtype d)
{
    return d == CKPT_DTYPE_F8_E4M3 || d == CKPT_DTYPE_F8_E5M2;
}

/* ---- reading the options into rules ---- */

/*
 * The order is what "last rule wins" makes of it: the target (its type, or
 * --dtype's, then the tensors kept in float32), the rename set, --nz, then
 * the user's rules, which refine all of them (a layer left out of --nz all or
 * --quant by glob).
 */
static int build_rules(struct ruleset *rs, const ckpt_convert_options *o, const ckpt_source *src, ckpt_error *err)
{
    if (o->dtype == CKPT_FLOAT_BF16 && o->target == CKPT_TARGET_ASCEND_310P)
        return ckpt_fail(err, CKPT_ERR_ARG, "type bf16 does not suit target ascend-310p: the 310P has no "
                         "bf16 (MindIE refuses torch_dtype bfloat16 there)");
    int rc = ruleset_add_target(rs, o->target, o->dtype, err);
    if (!rc && o->rename)
        rc = ruleset_add_rename(rs, o->rename, src, err);
    if (!rc && o->nz != CKPT_NZ_AUTO)
        rc = ruleset_parse(rs, o->nz == CKPT_NZ_ALL ? "* layout=nz" : "* layout=nd", "the nz option", err);
    if (!rc && o->rules)
        rc = ruleset_parse(rs, o->rules, o->rules_origin ? o->rules_origin : "rules", err);
    return rc;
}

/* ---- deciding each tensor ---- */

/*
 * The fp8 scale tensor for weight `t`, when dequantization applies; SIZE_MAX
 * otherwise.  Hugging Face names it W_scale_inv; DeepSeek's inference shards
 * name X.weight's X.scale (inference/convert.py line 60).
 */
static size_t find_scale(const struct ckpt_plan *plan, const ckpt_tensor *t, ckpt_dtype out_dtype)
{
    if (!is_fp8(t->dtype) || is_fp8(out_dtype) || t->rank != 2)
        return SIZE_MAX;
    size_t n = strlen(t->name);
    char *scale_name = malloc(n + sizeof SCALE_SUFFIX);
    if (!scale_name)
        return SIZE_MAX;
    memcpy(scale_name, t->name, n);
    memcpy(scale_name + n, SCALE_SUFFIX, sizeof SCALE_SUFFIX);
    size_t index;
    int found = ckpt_source_find(plan->src, scale_name, &index);
    if (found != CKPT_OK && n > 7 && strcmp(t->name + n - 7, ".weight") == 0 &&
        ckpt_source_metadata_value(plan->src, "deepseek.model_parallel")) {
        memcpy(scale_name + n - 7, ".scale", 7);
        found = ckpt_source_find(plan->src, scale_name, &index);
    }
    free(scale_name);
    if (found != CKPT_OK)
        return SIZE_MAX;
    const ckpt_tensor *s = ckpt_source_tensor(plan->src, index);
    uint64_t rows = (t->shape[0] + plan->fp8_block[0] - 1) / plan->fp8_block[0];
    uint64_t cols = (t->shape[1] + plan->fp8_block[1] - 1) / plan->fp8_block[1];
    if (s->dtype != CKPT_DTYPE_F32 || s->rank != 2 || s->shape[0] != rows || s->shape[1] != cols)
        return SIZE_MAX;
    return index;
}

/* The stored element type: rules change floating types only; fp8 without scales is cast directly. */
static ckpt_dtype output_dtype(const ckpt_tensor *t, const struct rule_decision *d)
{
    if (!is_float(t->dtype) || !d->set_dtype || d->dtype == CKPT_DTYPE_INVALID)
        return t->dtype;
    return d->dtype;
}

/*
 * C0 of an NZ tile row for `esize`-byte elements: 32 bytes of a row (16 two-byte,
 * 32 one-byte elements).  Four-byte elements have two values in CANN (16 in
 * torch_npu and GE, 8 in aclnnNpuFormatCast on A2/A3), so only the caller can
 * say which its device program expects; without that such a tensor is refused.
 */
static int nz_c0_for(const struct ckpt_plan *plan, const char *name, size_t esize, uint64_t *c0, ckpt_error *err)
{
    if (esize != 4) {
        *c0 = ckpt_nz_c0((unsigned)esize * 8);
        return CKPT_OK;
    }
    *c0 = plan->opts.nz_fp32_c0;
    if (*c0 == 8 || *c0 == 16)
        return CKPT_OK;
    return ckpt_fail(err, CKPT_ERR_ARG, "tensor %s: FRACTAL_NZ of 4-byte elements has two C0 values in CANN (16 in "
                     "torch_npu and GE, 8 in aclnnNpuFormatCast on A2/A3): name one (nz_fp32_c0: 16 or 8), or keep "
                     "it ND (layout=nd)", name);
}

/*
 * Fills an item's shapes: ND as the source (its selected rows; transposed
 * for nz-t), NZ tiles when asked and possible.  A quantized linear's scale
 * and offset are [rows, 1] columns, always ND.
 */
static int lay_out(const struct ckpt_plan *plan, struct plan_item *it, const ckpt_tensor *t, int layout,
                   ckpt_error *err)
{
    bool column = it->pub.quant_role == CKPT_QUANT_ROLE_SCALE || it->pub.quant_role == CKPT_QUANT_ROLE_OFFSET;
    uint32_t rank = column ? 2 : t->rank;
    it->shapes = calloc(2 * (size_t)rank + 3, sizeof *it->shapes);
    if (!it->shapes)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning %s", t->name);
    uint64_t *stored = it->shapes, *nd = it->shapes + rank + 3;   /* NZ adds up to 3 dims */
    memcpy(nd, t->shape, (column ? 1 : rank) * sizeof *nd);
    const ckpt_row_select *sel = &it->pub.rows;
    it->in_bytes = t->nbytes;
    if (sel->groups) {   /* rule_rows checked that these rows lie inside the tensor */
        nd[0] = sel->groups * sel->count;
        it->in_bytes = t->nbytes / t->shape[0] * nd[0];
    }
    if (column) {
        nd[1] = 1;
        if (it->pub.quant_role == CKPT_QUANT_ROLE_OFFSET)
            it->in_bytes = 0;   /* zeros: nothing is read */
    }
    size_t esize = ckpt_dtype_size(it->pub.dtype);
    bool nz = (layout == RULE_LAYOUT_NZ || layout == RULE_LAYOUT_NZ_T) && rank >= 2 && nd[rank - 1] > 1 &&
              nd[rank - 2] > 1 && esize <= 4;
    if (nz && layout == RULE_LAYOUT_NZ_T) {
        uint64_t rows = nd[rank - 2];
        nd[rank - 2] = nd[rank - 1];
        nd[rank - 1] = rows;
        it->pub.transposed = 1;
    }
    it->pub.nd_rank = rank;
    it->pub.nd_shape = nd;
    it->pub.shape = stored;
    uint64_t count;
    if (!nz) {
        memcpy(stored, nd, rank * sizeof *stored);
        it->pub.rank = rank;
        it->pub.layout = CKPT_LAYOUT_ND;
    } else {
        int rc = nz_c0_for(plan, it->pub.name, esize, &it->pub.nz_c0, err);
        if (!rc)
            rc = nz_shape_c0(nd, rank, (unsigned)esize * 8, it->pub.nz_c0, 0, stored, &it->pub.rank, err);
        if (rc)
            return rc;
        it->pub.layout = CKPT_LAYOUT_FRACTAL_NZ;
    }
    if (!ckpt_product_u64(stored, it->pub.rank, &count) || !ckpt_mul_u64(count, esize, &it->pub.nbytes))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "tensor %s: output size overflows", t->name);
    return CKPT_OK;
}

static int add_dropped(struct ckpt_plan *plan, const char *name, ckpt_error *err)
{
    char **grown = reallocarray(plan->dropped, plan->dropped_count + 1, sizeof *grown);
    if (!grown || !(grown[plan->dropped_count] = strdup(name))) {
        if (grown)
            plan->dropped = grown;
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
    }
    plan->dropped = grown;
    plan->dropped_count++;
    return CKPT_OK;
}

/* A zeroed item at the end of the plan's items, which owns it from then on. */
static int new_item(struct ckpt_plan *plan, struct plan_item **out, ckpt_error *err)
{
    if (plan->item_count == plan->item_cap) {
        size_t cap = plan->item_cap ? plan->item_cap * 2 : 64;
        struct plan_item *grown = reallocarray(plan->items, cap, sizeof *grown);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
        plan->items = grown;
        plan->item_cap = cap;
    }
    *out = memset(&plan->items[plan->item_count++], 0, sizeof **out);
    return CKPT_OK;
}

/*
 * The type msModelSlim quantizes a weight in: the one transformers loads it
 * as (torch_dtype="auto": config.json's torch_dtype, else the tensor's own
 * type), an fp8 weight being dequantized to bf16 first.
 */
static ckpt_dtype load_dtype_of(const struct ckpt_plan *plan, const ckpt_tensor *t)
{
    if (plan->cfg.torch_dtype != CKPT_DTYPE_INVALID)
        return plan->cfg.torch_dtype;
    return is_fp8(t->dtype) ? CKPT_DTYPE_BF16 : t->dtype;
}

/*
 * The quantization of output `name` of source tensor t: the last quant=
 * rule, else --quant's built-in selection.  Only 2-D floating `*.weight`
 * tensors are quantized; a quant= rule leaves others as they are.
 */
static ckpt_quant quant_of(const struct ckpt_plan *plan, const ckpt_tensor *t, const struct rule_decision *d,
                           const char *name)
{
    size_t n = strlen(name);
    if (!is_float(t->dtype) || t->rank != 2 || n < 7 || strcmp(name + n - 7, ".weight") != 0)
        return CKPT_QUANT_NONE;
    if (d->quant != RULE_QUANT_UNSET)
        return (ckpt_quant)d->quant;
    return quant_selects(name, &plan->cfg) ? plan->opts.quant : CKPT_QUANT_NONE;
}

/* X.weight_scale and X.weight_offset after the quantized X.weight at items[at], from the same source rows. */
static int add_quant_params(struct ckpt_plan *plan, size_t at, const ckpt_tensor *t, ckpt_error *err)
{
    static const struct {
        ckpt_quant_role role;
        const char *suffix;
    } params[] = {{CKPT_QUANT_ROLE_SCALE, "_scale"}, {CKPT_QUANT_ROLE_OFFSET, "_offset"}};
    int rc = CKPT_OK;
    for (size_t k = 0; k < 2 && !rc; k++) {
        struct plan_item *it;
        rc = new_item(plan, &it, err);
        if (rc)
            break;
        const struct plan_item *w = &plan->items[at];   /* after new_item: the array may have moved */
        size_t n = strlen(w->pub.name), m = strlen(params[k].suffix);
        char *name = malloc(n + m + 1);
        if (!name)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
        memcpy(name, w->pub.name, n);
        memcpy(name + n, params[k].suffix, m + 1);
        it->source_index = w->source_index;
        it->scale_index = w->scale_index;
        it->pub = (ckpt_plan_entry){.name = name, .source_name = w->pub.source_name,
                                    .source_dtype = w->pub.source_dtype, .dtype = CKPT_DTYPE_F32,
                                    .scale_name = w->pub.scale_name, .rows = w->pub.rows, .quant = w->pub.quant,
                                    .quant_role = params[k].role, .load_dtype = w->pub.load_dtype};
        rc = lay_out(plan, it, t, RULE_LAYOUT_ND, err);
    }
    return rc;
}

/* The outputs of one source tensor: usually one, one per part when a rule splits it (three when quantized). */
static int plan_tensor(struct ckpt_plan *plan, const struct ruleset *rs, size_t i, bool *consumed, bool *named,
                       ckpt_error *err)
{
    const ckpt_tensor *t = ckpt_source_tensor(plan->src, i);
    struct rule_decision d;
    int rc = ruleset_decide(rs, plan->src, t->name, t->dtype, &d, err);
    if (rc)
        return rc;
    named[i] = d.named;
    if (d.drop)
        return add_dropped(plan, t->name, err);
    /* the parts, then any copies: the same rows as the one part again under other names */
    for (size_t out = 0; out < d.parts + d.copies && !rc; out++) {
        size_t part = out < d.parts ? out : 0;
        char **name = out < d.parts ? &d.names[out] : &d.copy_names[out - d.parts];
        ckpt_row_select rows;
        struct plan_item *it = NULL;
        size_t at = plan->item_count;
        rc = rule_rows(&d, part, t->name, t->rank, t->shape, &rows, err);
        if (!rc)
            rc = new_item(plan, &it, err);
        if (rc)
            break;
        it->source_index = i;
        it->pub.name = *name;
        *name = NULL;
        it->pub.rows = rows;
        it->pub.source_name = t->name;
        it->pub.source_dtype = t->dtype;
        it->pub.dtype = output_dtype(t, &d);
        it->pub.quant = quant_of(plan, t, &d, it->pub.name);
        if (it->pub.quant != CKPT_QUANT_NONE) {
            it->pub.quant_role = CKPT_QUANT_ROLE_WEIGHT;
            it->pub.dtype = CKPT_DTYPE_I8;
            it->pub.load_dtype = load_dtype_of(plan, t);
            plan->quantizes = true;
        }
        it->scale_index = find_scale(plan, t, it->pub.quant ? it->pub.load_dtype : it->pub.dtype);
        if (it->scale_index != SIZE_MAX) {
            consumed[it->scale_index] = true;
            it->pub.scale_name = ckpt_source_tensor(plan->src, it->scale_index)->name;
            plan->fp8_dequantized = true;
        }
        rc = lay_out(plan, it, t, d.layout, err);
        if (!rc && plan->items[at].pub.quant != CKPT_QUANT_NONE)
            rc = add_quant_params(plan, at, t, err);
    }
    rule_decision_free(&d);
    return rc;
}

/* Two outputs of tied source tensors that hold the same bytes: the same rows, made the same way. */
static bool same_content(const ckpt_plan_entry *a, const ckpt_plan_entry *b)
{
    const ckpt_row_select *x = &a->rows, *y = &b->rows;
    return x->groups == y->groups && x->group_rows == y->group_rows && x->offset == y->offset && x->count == y->count &&
           a->dtype == b->dtype && a->layout == b->layout && a->transposed == b->transposed && a->nz_c0 == b->nz_c0 &&
           a->quant == b->quant && a->quant_role == b->quant_role && a->load_dtype == b->load_dtype;
}

/*
 * Aliases point at their target's output name (the same rows of it, made
 * the same way); an alias of a dropped tensor, or one the rules make
 * differently (another type, layout or quantization), is stored itself.  The items of each source
 * tensor are chained first, so that an alias finds its target's items
 * without a scan: a hostile file can tie a million tensors.
 */
static int resolve_aliases(struct ckpt_plan *plan, ckpt_error *err)
{
    size_t n = ckpt_source_tensor_count(plan->src);
    size_t *first = malloc((n + 1) * sizeof *first), *next = malloc((plan->item_count + 1) * sizeof *next);
    if (!first || !next) {
        free(first);
        free(next);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
    }
    for (size_t s = 0; s < n; s++)
        first[s] = SIZE_MAX;
    for (size_t j = plan->item_count; j-- > 0;) {
        next[j] = first[plan->items[j].source_index];
        first[plan->items[j].source_index] = j;
    }
    for (size_t i = 0; i < plan->item_count; i++) {
        struct plan_item *it = &plan->items[i];
        size_t target;
        const char *alias_of = ckpt_source_tensor(plan->src, it->source_index)->alias_of;
        if (!alias_of || ckpt_source_find(plan->src, alias_of, &target) != CKPT_OK)
            continue;
        it->pub.alias_of = NULL;
        for (size_t j = first[target]; j != SIZE_MAX && !it->pub.alias_of; j = next[j])
            if (!plan->items[j].pub.alias_of && same_content(&plan->items[j].pub, &it->pub))
                it->pub.alias_of = plan->items[j].pub.name;
    }
    free(first);
    free(next);
    return CKPT_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Renames must not make two tensors one. */
static int check_unique_names(const struct ckpt_plan *plan, ckpt_error *err)
{
    const char **names = malloc((plan->item_count + 1) * sizeof *names);
    if (!names)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
    for (size_t i = 0; i < plan->item_count; i++)
        names[i] = plan->items[i].pub.name;
    qsort(names, plan->item_count, sizeof *names, by_name);
    int rc = CKPT_OK;
    for (size_t i = 1; i < plan->item_count && !rc; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = ckpt_fail(err, CKPT_ERR_ARG, "two tensors would both be written as %s: check the rename rules",
                           names[i]);
    free(names);
    return rc;
}

/* ---- shards ---- */

static int add_shard(struct ckpt_plan *plan, size_t first, ckpt_error *err)
{
    struct plan_shard *grown = reallocarray(plan->shards, plan->shard_count + 1, sizeof *grown);
    if (!grown)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning shards");
    plan->shards = grown;
    plan->shards[plan->shard_count++] = (struct plan_shard){NULL, 0, first, 0};
    return CKPT_OK;
}

/*
 * Packs stored tensors into shards in order, starting a new shard when the
 * next tensor would pass max_shard_bytes (a larger tensor gets a shard of its
 * own).  Aliases are not stored; they sort after every stored tensor so that
 * each shard's tensors stay consecutive.
 */
static int assign_shards(struct ckpt_plan *plan, ckpt_error *err)
{
    struct plan_item *sorted = malloc((plan->item_count + 1) * sizeof *sorted);
    if (!sorted)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning shards");
    size_t stored = 0, placed;
    for (size_t i = 0; i < plan->item_count; i++)
        if (!plan->items[i].pub.alias_of)
            sorted[stored++] = plan->items[i];
    placed = stored;
    for (size_t i = 0; i < plan->item_count; i++)
        if (plan->items[i].pub.alias_of)
            sorted[placed++] = plan->items[i];
    free(plan->items);
    plan->items = sorted;   /* aliases keep pointing at their targets' names, which did not move */
    plan->item_cap = plan->item_count + 1;
    int rc = CKPT_OK;
    for (size_t i = 0; i < stored && !rc; i++) {
        struct plan_item *it = &plan->items[i];
        struct plan_shard *cur = plan->shard_count ? &plan->shards[plan->shard_count - 1] : NULL;
        if (!cur || (cur->item_count && cur->data_bytes + it->pub.nbytes > plan->opts.max_shard_bytes)) {
            rc = add_shard(plan, i, err);
            cur = &plan->shards[plan->shard_count - 1];
        }
        if (rc)
            break;
        it->pub.shard = (uint32_t)(plan->shard_count - 1);
        it->pub.offset = cur->data_bytes;
        cur->data_bytes += it->pub.nbytes;
        cur->item_count++;
        plan->bytes_in += it->in_bytes;
        plan->bytes_out += it->pub.nbytes;
    }
    if (!rc && plan->shard_count == 0)
        rc = add_shard(plan, 0, err);
    for (size_t k = 0; k < plan->shard_count && !rc; k++) {
        char name[96];
        snprintf(name, sizeof name, "%s-%05zu-of-%05zu.safetensors", plan->quantized ? QUANT_WEIGHTS_STEM : "model",
                 k + 1, plan->shard_count);
        if (!(plan->shards[k].name = strdup(name)))
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning shards");
    }
    for (size_t i = stored; i < plan->item_count; i++)
        plan->items[i].pub.shard = UINT32_MAX;
    return rc;
}

/*
 * config.json's torch_dtype: the type the target (or --dtype) gives every
 * floating tensor, else the one most of the output bytes are stored in.
 */
static ckpt_dtype model_float_dtype(const struct ckpt_plan *plan)
{
    const char *base = plan->opts.dtype != CKPT_FLOAT_TARGET ? ckpt_float_type_name(plan->opts.dtype)
                                                             : ruleset_target_dtype(plan->opts.target);
    ckpt_dtype named;
    if (base && rules_parse_dtype(base, &named) && named != CKPT_DTYPE_INVALID)
        return named;
    uint64_t bytes[CKPT_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < plan->item_count; i++)
        if (is_float(plan->items[i].pub.dtype))
            bytes[plan->items[i].pub.dtype] += plan->items[i].pub.nbytes;
    ckpt_dtype best = CKPT_DTYPE_INVALID;
    for (int d = 0; d < CKPT_DTYPE_COUNT; d++)
        if (bytes[d] > (best == CKPT_DTYPE_INVALID ? 0 : bytes[best]))
            best = (ckpt_dtype)d;
    return best;
}

static int copy_options(struct ckpt_plan *plan, const char *dst, const ckpt_convert_options *opts, ckpt_error *err)
{
    ckpt_convert_options_default(&plan->opts);
    int rc = options_take(&plan->opts, sizeof plan->opts, opts, "ckpt_convert_options", err);
    if (rc)
        return rc;
    if (plan->opts.target == CKPT_TARGET_NONE)
        return ckpt_fail(err, CKPT_ERR_ARG, "no target: set ckpt_convert_options.target (ascend-310p, ascend-910b "
                         "or nd)");
    if (!ckpt_target_name(plan->opts.target))
        return ckpt_fail(err, CKPT_ERR_ARG, "unknown target %d", (int)plan->opts.target);
    if (!ckpt_float_type_name(plan->opts.dtype))
        return ckpt_fail(err, CKPT_ERR_ARG, "unknown floating type %d", (int)plan->opts.dtype);
    if (plan->opts.quant < CKPT_QUANT_NONE || plan->opts.quant > CKPT_QUANT_W8A16)
        return ckpt_fail(err, CKPT_ERR_ARG, "unknown quantization %d", (int)plan->opts.quant);
    if (plan->opts.nz_fp32_c0 != 0 && plan->opts.nz_fp32_c0 != 8 && plan->opts.nz_fp32_c0 != 16)
        return ckpt_fail(err, CKPT_ERR_ARG, "nz_fp32_c0 is 8 or 16, not %u", plan->opts.nz_fp32_c0);
    if (plan->opts.max_shard_bytes == 0)
        return ckpt_fail(err, CKPT_ERR_ARG, "max_shard_bytes must be positive");
    plan->dst = strdup(dst);
    plan->rules = plan->opts.rules ? strdup(plan->opts.rules) : NULL;
    plan->rules_origin = plan->opts.rules_origin ? strdup(plan->opts.rules_origin) : NULL;
    plan->rename = plan->opts.rename ? strdup(plan->opts.rename) : NULL;
    if (!plan->dst || (plan->opts.rules && !plan->rules) || (plan->opts.rules_origin && !plan->rules_origin) ||
        (plan->opts.rename && !plan->rename))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning");
    plan->opts.rules = plan->rules;
    plan->opts.rules_origin = plan->rules_origin;
    plan->opts.rename = plan->rename;
    return CKPT_OK;
}

/*
 * A rename set maps a whole naming scheme: once it names some tensors of a
 * source, a tensor that neither it nor the user's rules rename or drop would
 * be written under its old name beside the new ones, an output that looks
 * converted but does not load.  Refused, naming the first such tensor.
 */
static int check_all_renamed(const struct ckpt_plan *plan, const bool *named, const bool *consumed,
                             ckpt_error *err)
{
    size_t n = ckpt_source_tensor_count(plan->src), renamed = 0, left = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (named[i])
            renamed++;
        else if (!consumed[i] && !left++)
            first = i;
    }
    if (!plan->opts.rename || !renamed || !left)
        return CKPT_OK;
    char more[48] = "";
    if (left > 1)
        snprintf(more, sizeof more, " (and %zu more)", left - 1);
    return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: rename set %s has no name for %s%s: add a rule that renames or "
                     "drops it", ckpt_source_path(plan->src), plan->opts.rename,
                     ckpt_source_tensor(plan->src, first)->name, more);
}

int ckpt_plan_build(ckpt_plan **out, const ckpt_source *src, const char *dst, const ckpt_convert_options *opts,
                    ckpt_error *err)
{
    ckpt_error_clear(err);
    if (!out || !src || !dst)
        return ckpt_fail(err, CKPT_ERR_ARG, "ckpt_plan_build: NULL argument");
    *out = NULL;
    struct ckpt_plan *plan = calloc(1, sizeof *plan);
    size_t n = ckpt_source_tensor_count(src);
    bool *consumed = calloc(n + 1, sizeof *consumed), *named = calloc(n + 1, sizeof *named);
    struct ruleset rs = {0};
    int rc = (!plan || !consumed || !named) ? ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory planning") : CKPT_OK;
    if (!rc) {
        plan->src = src;
        rc = copy_options(plan, dst, opts, err);
    }
    if (!rc)
        rc = build_rules(&rs, &plan->opts, src, err);
    if (!rc)
        rc = source_config_read(src, &plan->cfg, err);
    if (!rc) {
        plan->fp8_block[0] = plan->cfg.fp8_block[0];
        plan->fp8_block[1] = plan->cfg.fp8_block[1];
    }
    for (size_t i = 0; i < n && !rc; i++)
        rc = plan_tensor(plan, &rs, i, consumed, named, err);
    if (!rc)
        rc = check_all_renamed(plan, named, consumed, err);
    /* scales consumed by dequantization leave the output */
    size_t kept = 0;
    for (size_t i = 0; plan && i < plan->item_count; i++) {
        if (consumed[plan->items[i].source_index]) {
            bool listed = i > 0 && plan->items[i - 1].source_index == plan->items[i].source_index;   /* split */
            if (!rc && !listed)
                rc = add_dropped(plan, plan->items[i].pub.source_name, err);
            free((char *)plan->items[i].pub.name);
            free(plan->items[i].shapes);
        } else {
            plan->items[kept++] = plan->items[i];
        }
    }
    if (plan)
        plan->item_count = kept;
    const char *quantized_already = ckpt_source_metadata_value(src, "msmodelslim.model_quant_type");
    if (!rc && plan->opts.quant != CKPT_QUANT_NONE && !plan->quantizes && quantized_already)
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: quantization %s: this folder is quantized already (%s)",
                       ckpt_source_path(src), rules_quant_word(plan->opts.quant), quantized_already);
    if (!rc && plan->opts.quant != CKPT_QUANT_NONE && !plan->quantizes)
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: quantization %s found no linear to quantize: it takes the decoder "
                       "layers' projections by Hugging Face name (model.layers.N.self_attn.q_proj.weight, ...; "
                       "docs/quantization.md); rename them (a rename set) or name them with quant= rules",
                       ckpt_source_path(src), rules_quant_word(plan->opts.quant));
    if (!rc)
        rc = resolve_aliases(plan, err);
    if (!rc)
        rc = check_unique_names(plan, err);
    if (!rc)
        rc = quant_check_fused(plan, err);
    /* quantized by this plan, or in a quantized source */
    for (size_t i = 0; !rc && i < plan->item_count && !plan->quantized; i++)
        plan->quantized = strcmp(quant_type_of(plan, &plan->items[i]), ckpt_quant_name(CKPT_QUANT_NONE)) != 0;
    if (!rc)
        rc = assign_shards(plan, err);
    if (!rc)
        plan->float_dtype = model_float_dtype(plan);
    ruleset_free(&rs);
    free(consumed);
    free(named);
    if (rc) {
        ckpt_plan_free(plan);
        return rc;
    }
    *out = plan;
    return CKPT_OK;
}

void ckpt_plan_free(ckpt_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->item_count; i++) {
        free((char *)plan->items[i].pub.name);
        free(plan->items[i].shapes);
    }
    for (size_t i = 0; i < plan->shard_count; i++)
        free(plan->shards[i].name);
    for (size_t i = 0; i < plan->dropped_count; i++)
        free(plan->dropped[i]);
    free(plan->items);
    free(plan->shards);
    free(plan->dropped);
    free(plan->dst);
    free(plan->rules);
    free(plan->rules_origin);
    free(plan->rename);
    free(plan);
}

size_t ckpt_plan_entry_count(const ckpt_plan *plan)
{
    return plan->item_count;
}

const ckpt_plan_entry *ckpt_plan_entry_at(const ckpt_plan *plan, size_t i)
{
    return i < plan->item_count ? &plan->items[i].pub : NULL;
}

size_t ckpt_plan_shard_count(const ckpt_plan *plan)
{
    return plan->shard_count;
}

const char *ckpt_plan_shard_name(const ckpt_plan *plan, size_t shard)
{
    return shard < plan->shard_count ? plan->shards[shard].name : NULL;
}

size_t ckpt_plan_dropped_count(const ckpt_plan *plan)
{
    return plan->dropped_count;
}

const char *ckpt_plan_dropped(const ckpt_plan *plan, size_t i)
{
    return i < plan->dropped_count ? plan->dropped[i] : NULL;
}

uint64_t ckpt_plan_bytes_in(const ckpt_plan *plan)
{
    return plan->bytes_in;
}

uint64_t ckpt_plan_bytes_out(const ckpt_plan *plan)
{
    return plan->bytes_out;
}

void ckpt_plan_cancel(ckpt_plan *plan)
{
    atomic_store(&plan->cancelled, 1);
}
