/*
 * deepspeed_zero.c: full fp32 weights rebuilt from ZeRO optimizer
 * partitions, exactly as DeepSpeed's zero_to_fp32.py does, but as runs into
 * the partitions where they lie (nothing is copied at open).
 *
 * Stage 1/2: a group's partitions, concatenated over ranks, hold its
 * parameters one after the other in param_shapes order, then padding (the
 * group was padded to a multiple of 2 * world before it was cut).
 * Stage 3: every parameter was cut in `world` pieces of ceil(numel / world)
 * elements, the last padded; each rank's flat vector (its groups
 * concatenated) holds its piece of every parameter in param_shapes order.
 * zero_to_fp32's sanity checks are applied, and every run is checked to stay
 * inside its partition, so a short or inconsistent file is refused naming
 * the file and the tensor.
 */
#include "deepspeed.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One partition tensor: a piece of a flat fp32 vector. */
struct segment {
    const struct ds_file *file;
    size_t tensor;
    uint64_t numel;
};

/* A flat vector made of segments, and the runs being gathered for one tensor. */
struct flat {
    struct segment *segs;
    size_t count;
    uint64_t numel;
};

struct runs {
    struct tensor_run *v;
    size_t count, cap;
};

/* A partition must be a contiguous vector (of fp32 master weights unless `dtype` is INVALID). */
static int segment_check(const struct ds_file *f, size_t tensor, ckpt_dtype dtype, const char *what,
                         struct segment *s, ckpt_error *err)
{
    const struct tensor_entry *t = &f->scratch->tensors[tensor];
    bool contiguous = !t->strides || (t->pub.rank == 1 && t->strides[0] == 1);
    if (t->parts || t->pub.rank != 1 || !contiguous)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is not a flat vector", f->path, what);
    if (dtype != CKPT_DTYPE_INVALID && t->pub.dtype != dtype)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s holds %s, not %s", f->path, what,
                         ckpt_dtype_name(t->pub.dtype), ckpt_dtype_name(dtype));
    *s = (struct segment){f, tensor, t->shape[0]};
    return CKPT_OK;
}

static int flat_add(struct flat *fl, const struct ds_file *f, size_t tensor, ckpt_dtype dtype, const char *what,
                    ckpt_error *err)
{
    struct segment *grown = realloc(fl->segs, (fl->count + 1) * sizeof *grown);
    if (!grown)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->path);
    fl->segs = grown;
    int rc = segment_check(f, tensor, dtype, what, &grown[fl->count], err);
    if (rc)
        return rc;
    if (!ckpt_add_u64(fl->numel, grown[fl->count].numel, &fl->numel))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: partition sizes overflow", f->path);
    fl->count++;
    return CKPT_OK;
}

/* Runs for elements [at, at + count) of the flat vector, landing at element `first` of the tensor. */
static int flat_take(const struct flat *fl, uint64_t at, uint64_t count, uint64_t first, struct runs *r,
                     const char *name, ckpt_error *err)
{
    uint64_t start = 0;
    for (size_t i = 0; i < fl->count && count; i++) {
        const struct segment *s = &fl->segs[i];
        uint64_t end = start + s->numel;
        if (at < end) {
            uint64_t n = end - at < count ? end - at : count;
            if (r->count == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 8;
                struct tensor_run *grown = cap <= SOURCE_MAX_PIECES ? realloc(r->v, cap * sizeof *grown) : NULL;
                if (!grown)
                    return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: tensor %s: too many pieces", s->file->path, name);
                r->v = grown;
                r->cap = cap;
            }
            const struct tensor_entry *t = &s->file->scratch->tensors[s->tensor];
            struct tensor_run *run = &r->v[r->count++];
            run->first = first;
            run->count = n;
            run->view = t->view;
            run->view.file += s->file->base;
            run->view.strides = NULL;
            run->view.elem_offset += at - start;
            first += n;
            at += n;
            count -= n;
        }
        start = end;
    }
    if (count)   /* callers check sizes first: this is a guard, not a path */
        return ckpt_fail(err, CKPT_ERR_FORMAT, "tensor %s: a partition ends too early", name);
    return CKPT_OK;
}

static int declare_runs(struct ckpt_source *src, const struct ds_param *p, struct runs *r, ckpt_error *err)
{
    int rc = source_add_runs(src, p->name, CKPT_DTYPE_F32, p->rank, p->shape, r->v, r->count, err);
    r->count = 0;
    return rc;
}

static const struct ds_file *last_file(const struct flat *fl, const struct ds_file *fallback)
{
    return fl->count ? fl->segs[fl->count - 1].file : fallback;
}

/* Stage 1/2: group g's partitions over the ranks, cut into its parameters. */
static int zero2_group(struct ckpt_source *src, const struct ds_model *m, size_t g, struct ds_optim *optims,
                       size_t world, struct runs *r, ckpt_error *err)
{
    struct flat fl = {0};
    char what[64];
    snprintf(what, sizeof what, "single_partition_of_fp32_groups.%zu", g);
    int rc = CKPT_OK;
    for (size_t k = 0; k < world && !rc; k++)
        rc = flat_add(&fl, &optims[k].file, optims[k].flat[g], CKPT_DTYPE_F32, what, err);
    uint64_t offset = 0;
    for (size_t i = g ? m->group_end[g - 1] : 0; i < m->group_end[g] && !rc; i++) {
        const struct ds_param *p = &m->params[i];
        uint64_t end;
        if (!ckpt_add_u64(offset, p->numel, &end) || end > fl.numel)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                           "%s: tensor %s: group %zu's partitions hold %llu elements, the tensor needs %llu to %llu",
                           last_file(&fl, &optims[0].file)->path, p->name, g, (unsigned long long)fl.numel,
                           (unsigned long long)offset, (unsigned long long)(offset + p->numel));
        if (!rc)
            rc = flat_take(&fl, offset, p->numel, 0, r, p->name, err);
        if (!rc)
            rc = declare_runs(src, p, r, err);
        offset = end;
    }
    /* zero_to_fp32's check: the group consumed everything but the alignment padding */
    uint64_t align = 2 * (uint64_t)world;
    if (!rc && (offset + align - 1) / align != (fl.numel + align - 1) / align)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: group %zu: param_shapes consume %llu of its %llu elements",
                       last_file(&fl, &optims[0].file)->path, g, (unsigned long long)offset,
                       (unsigned long long)fl.numel);
    free(fl.segs);
    return rc;
}

/*
 * An MoE expert group (split_params_into_different_moe_groups_for_optimizer,
 * deepspeed/moe/utils.py:72-121): its parameters are routed experts'.  Its
 * partitions hold one expert-parallel rank's experts, over that rank's
 * expert-data-parallel group, and param_shapes names rank 0's only, so the
 * other ranks' experts have no shapes to be placed by: zero_to_fp32 cannot
 * rebuild them, and neither does this.
 */
static bool expert_group(const struct ds_model *m, size_t g)
{
    for (size_t i = g ? m->group_end[g - 1] : 0; i < m->group_end[g]; i++)
        if (strstr(m->params[i].name, ".deepspeed_moe.experts.deepspeed_experts."))
            return true;
    return false;
}

static int zero2_params(struct ckpt_source *src, const struct ds_model *m, struct ds_optim *optims, size_t world,
                        struct runs *r, ckpt_error *err)
{
    for (size_t k = 0; k < world; k++)
        if (optims[k].flat_count != m->group_count)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %zu fp32 partitions for the %zu groups of param_shapes",
                             optims[k].file.path, optims[k].flat_count, m->group_count);
    for (size_t g = 0; g < m->group_count; g++) {
        int64_t gw = optims[0].group_world ? optims[0].group_world[g] : (int64_t)world;
        if (expert_group(m, g))
            continue;   /* its experts come whole, in 16 bits, from the expert files (deepspeed_moe.c) */
        if (gw != (int64_t)world)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: group %zu is partitioned over %lld ranks, not the %zu of the "
                             "data-parallel group, and holds no expert", optims[0].file.path, g, (long long)gw, world);
        int rc = zero2_group(src, m, g, optims, world, r, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* ceil(numel / world): the piece of a ZeRO-3 parameter each rank holds. */
static uint64_t piece_of(uint64_t numel, size_t world)
{
    return numel / world + (numel % world != 0);
}

/* Stage 3: each parameter gathered from its piece on every rank. */
static int zero3_params(struct ckpt_source *src, const struct ds_model *m, struct ds_optim *optims, size_t world,
                        struct runs *r, ckpt_error *err)
{
    struct flat *fl = calloc(world, sizeof *fl);
    int rc = fl ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < world && !rc; k++)
        for (size_t g = 0; g < optims[k].flat_count && !rc; g++)
            rc = flat_add(&fl[k], &optims[k].file, optims[k].flat[g], CKPT_DTYPE_F32, "fp32_flat_groups", err);
    uint64_t offset = 0;
    for (size_t i = 0; i < m->param_count && !rc; i++) {
        const struct ds_param *p = &m->params[i];
        uint64_t piece = piece_of(p->numel, world), end;
        if (!ckpt_add_u64(offset, piece, &end))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: param_shapes sizes overflow", optims[0].file.path,
                           p->name);
        for (size_t k = 0; k < world && !rc; k++) {
            uint64_t first = piece * k, count = first < p->numel ? p->numel - first : 0;
            if (count > piece)
                count = piece;
            if (end > fl[k].numel)
                rc = ckpt_fail(err, CKPT_ERR_FORMAT,
                               "%s: tensor %s: fp32_flat_groups hold %llu elements, the tensor's piece needs %llu",
                               optims[k].file.path, p->name, (unsigned long long)fl[k].numel,
                               (unsigned long long)end);
            else if (count)
                rc = flat_take(&fl[k], offset, count, first, r, p->name, err);
        }
        if (!rc)
            rc = declare_runs(src, p, r, err);
        offset = end;
    }
    /* zero_to_fp32's check: the pieces fill every rank's flat vector exactly */
    for (size_t k = 0; k < world && !rc; k++)
        if (fl[k].numel != offset)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: param_shapes consume %llu of its %llu fp32 elements",
                           optims[k].file.path, (unsigned long long)offset, (unsigned long long)fl[k].numel);
    for (size_t k = 0; fl && k < world; k++)
        free(fl[k].segs);
    free(fl);
    return rc;
}

/* Frozen parameters: whole in the model states (stage 1/2), or one piece per rank's file (stage 3). */
static int frozen_params(struct ckpt_source *src, int64_t stage, struct ds_model *models, size_t model_count,
                         struct runs *r, ckpt_error *err)
{
    const struct ds_model *m = &models[0];
    for (size_t i = 0; i < m->frozen_count; i++) {
        const struct ds_param *p = &m->frozen[i];
        if (stage < 3) {
            const struct tensor_entry *t = p->fragment == SIZE_MAX ? NULL : &m->file.scratch->tensors[p->fragment];
            if (!t || t->pub.rank != p->rank || memcmp(t->shape, p->shape, p->rank * sizeof *p->shape) != 0)
                return ckpt_fail(err, CKPT_ERR_FORMAT,
                                 "%s: tensor %s: frozen_param_fragments lacks it or has another shape", m->file.path,
                                 p->name);
            int rc = ds_declare(src, &m->file, p->fragment, p->name, err);
            if (rc)
                return rc;
            continue;
        }
        uint64_t done = 0;
        ckpt_dtype dtype = CKPT_DTYPE_INVALID;
        for (size_t k = 0; k < model_count && done < p->numel; k++) {
            size_t at = SIZE_MAX;   /* ranks list frozen parameters in the same order: look there first */
            const struct ds_model *mk = &models[k];
            if (i < mk->frozen_count && strcmp(mk->frozen[i].name, p->name) == 0)
                at = mk->frozen[i].fragment;
            for (size_t j = 0; j < mk->frozen_count && at == SIZE_MAX; j++)
                if (strcmp(mk->frozen[j].name, p->name) == 0)
                    at = mk->frozen[j].fragment;
            struct flat fl = {0};
            int rc = at == SIZE_MAX ? ckpt_fail(err, CKPT_ERR_FORMAT,
                                                "%s: tensor %s: frozen_param_fragments lacks it",
                                                models[k].file.path, p->name)
                                    : flat_add(&fl, &models[k].file, at, CKPT_DTYPE_INVALID, p->name, err);
            const ckpt_dtype here = rc ? CKPT_DTYPE_INVALID : models[k].file.scratch->tensors[at].pub.dtype;
            if (!rc && dtype != CKPT_DTYPE_INVALID && here != dtype)
                rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its pieces differ in element type",
                               models[k].file.path, p->name);
            dtype = here;
            uint64_t n = fl.numel < p->numel - done ? fl.numel : p->numel - done;
            if (!rc && n)
                rc = flat_take(&fl, 0, n, done, r, p->name, err);
            free(fl.segs);
            if (rc)
                return rc;
            done += n;
        }
        if (done < p->numel)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its frozen pieces hold %llu of its %llu elements",
                             models[model_count - 1].file.path, p->name, (unsigned long long)done,
                             (unsigned long long)p->numel);
        int rc = source_add_runs(src, p->name, dtype, p->rank, p->shape, r->v, r->count, err);
        r->count = 0;
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* Buffers as the module state dict stores them (zero_to_fp32 would also cast them to fp32). */
static int buffers(struct ckpt_source *src, const struct ds_model *m, ckpt_error *err)
{
    for (size_t b = 0; b < m->buffer_count; b++) {
        size_t at = SIZE_MAX;
        for (size_t i = 0; i < m->module_count && at == SIZE_MAX; i++)
            if (strcmp(m->module_names[i], m->buffers[b]) == 0)
                at = m->module_tensors[i];
        if (at == SIZE_MAX)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: a buffer missing from module", m->file.path,
                             m->buffers[b]);
        int rc = ds_declare(src, &m->file, at, m->buffers[b], err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

int ds_zero_declare(struct ckpt_source *src, int64_t stage, struct ds_model *models, size_t model_count,
                    struct ds_optim *optims, size_t world, ckpt_error *err)
{
    const struct ds_model *m = &models[0];
    struct runs r = {0};
    int rc = buffers(src, m, err);
    if (!rc)
        rc = frozen_params(src, stage, models, model_count, &r, err);
    if (!rc)
        rc = stage == 3 ? zero3_params(src, m, optims, world, &r, err) : zero2_params(src, m, optims, world, &r, err);
    for (size_t i = 0; i + 1 < m->shared_count && !rc; i += 2) {
        size_t target = source_lookup(src, m->shared[i + 1]);
        if (target != SIZE_MAX)   /* as zero_to_fp32: a share of something not rebuilt is left out */
            rc = source_add_alias(src, m->shared[i], target, err);
    }
    free(r.v);
    return rc;
}
