/*
 * deepspeed_states.c: what DeepSpeed's model and optimizer states files say
 * (deepspeed/checkpoint/constants.py names the keys): parameter shapes and
 * groups, frozen and shared parameters, buffers, the ZeRO stage, the
 * data-parallel size and the fp32 partitions.  Each file is read by the
 * torch.save reader into a scratch source; its pickle is then walked here.
 */
#include "deepspeed.h"

#include "formats/torch/pickle.h"
#include "formats/torch/torch.h"
#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdlib.h>
#include <string.h>

/* Groups, parameters, names per file: far above any real model, low enough to bound memory. */
#define DS_MAX_ENTRIES 10000000

static const struct pk_value *dict_get(const struct pk_value *d, const char *key)
{
    if (!d || d->kind != PK_DICT)
        return NULL;
    for (size_t i = 0; i + 1 < d->count; i += 2) {
        const char *k = pk_str(d->items[i]);
        if (k && strcmp(k, key) == 0)
            return d->items[i + 1];
    }
    return NULL;
}

/* The catalog index of a tensor node, or SIZE_MAX when `v` is not a tensor. */
static size_t tensor_of(const struct pk_value *v)
{
    return v && v->kind == PK_CALL && v->tag >= 0 ? (size_t)v->tag : SIZE_MAX;
}

static void *grow_array(void *array, size_t count, size_t elem)
{
    return count < DS_MAX_ENTRIES ? realloc(array, (count + 1) * elem) : NULL;
}

/* A torch.Size (a tuple once unpickled) into p. */
static int parse_shape(const struct pk_value *v, struct ds_param *p, const char *origin, ckpt_error *err)
{
    if (!v || (v->kind != PK_TUPLE && v->kind != PK_LIST) || v->count > SOURCE_MAX_RANK)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its shape is not a list of sizes", origin, p->name);
    p->rank = (uint32_t)v->count;
    for (size_t d = 0; d < v->count; d++) {
        int64_t n;
        if (!pk_int(v->items[d], &n) || n < 0)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: size %zu is not a count", origin, p->name, d);
        p->shape[d] = (uint64_t)n;
    }
    if (!ckpt_product_u64(p->shape, p->rank, &p->numel))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s: its size overflows", origin, p->name);
    return CKPT_OK;
}

/* Appends the name -> shape entries of dict `d` to *params. */
static int parse_shapes(const struct pk_value *d, struct ds_param **params, size_t *count, const char *what,
                        const char *origin, ckpt_error *err)
{
    if (!d || d->kind != PK_DICT)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is not a dict of shapes", origin, what);
    for (size_t i = 0; i + 1 < d->count; i += 2) {
        const char *name = pk_str(d->items[i]);
        if (!name)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s has a key that is not a name", origin, what);
        struct ds_param *grown = grow_array(*params, *count, sizeof **params);
        if (!grown)
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading %s", origin, what);
        *params = grown;
        struct ds_param *p = &grown[*count];
        memset(p, 0, sizeof *p);
        p->fragment = SIZE_MAX;
        if (!(p->name = strdup(name)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading %s", origin, what);
        (*count)++;
        int rc = parse_shape(d->items[i + 1], p, origin, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int add_name(char ***names, size_t *count, const char *name, const char *origin, ckpt_error *err)
{
    char **grown = grow_array(*names, *count, sizeof **names);
    if (grown)
        *names = grown;
    if (!grown || !(grown[*count] = strdup(name)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    (*count)++;
    return CKPT_OK;
}

static int model_shapes(struct ds_model *m, const struct pk_value *root, const char *origin, ckpt_error *err)
{
    const struct pk_value *groups = dict_get(root, "param_shapes");
    if (!groups || (groups->kind != PK_LIST && groups->kind != PK_TUPLE))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: param_shapes is missing or not a list", origin);
    if (groups->count > DS_MAX_ENTRIES || !(m->group_end = calloc(groups->count + 1, sizeof *m->group_end)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading param_shapes", origin);
    for (size_t g = 0; g < groups->count; g++) {
        int rc = parse_shapes(groups->items[g], &m->params, &m->param_count, "param_shapes", origin, err);
        if (rc)
            return rc;
        m->group_end[m->group_count++] = m->param_count;
    }
    const struct pk_value *frozen = dict_get(root, "frozen_param_shapes");
    if (frozen && frozen->kind != PK_NONE) {
        int rc = parse_shapes(frozen, &m->frozen, &m->frozen_count, "frozen_param_shapes", origin, err);
        if (rc)
            return rc;
    }
    const struct pk_value *fragments = dict_get(root, "frozen_param_fragments");
    for (size_t i = 0; i < m->frozen_count; i++)
        m->frozen[i].fragment = tensor_of(dict_get(fragments, m->frozen[i].name));
    return CKPT_OK;
}

static int model_names(struct ds_model *m, const struct pk_value *root, const char *origin, ckpt_error *err)
{
    const struct pk_value *buffers = dict_get(root, "buffer_names");
    if (!buffers || (buffers->kind != PK_LIST && buffers->kind != PK_TUPLE))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: buffer_names is missing: not DeepSpeed model states", origin);
    for (size_t i = 0; i < buffers->count; i++) {
        if (!pk_str(buffers->items[i]))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: buffer_names holds something that is not a name", origin);
        int rc = add_name(&m->buffers, &m->buffer_count, pk_str(buffers->items[i]), origin, err);
        if (rc)
            return rc;
    }
    const struct pk_value *shared = dict_get(root, "shared_params");
    for (size_t i = 0; shared && shared->kind == PK_DICT && i + 1 < shared->count; i += 2) {
        const char *name = pk_str(shared->items[i]), *target = pk_str(shared->items[i + 1]);
        if (!name || !target)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: shared_params maps something that is not a name", origin);
        int rc = add_name(&m->shared, &m->shared_count, name, origin, err);
        if (!rc)
            rc = add_name(&m->shared, &m->shared_count, target, origin, err);
        if (rc)
            return rc;
    }
    const struct pk_value *module = dict_get(root, "module");
    if (!module || module->kind != PK_DICT)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: module is missing or not a state dict", origin);
    for (size_t i = 0; i + 1 < module->count; i += 2) {
        const char *name = pk_str(module->items[i]);
        size_t t = tensor_of(module->items[i + 1]);
        if (!name || t == SIZE_MAX)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: module holds an entry that is not a named tensor", origin);
        size_t *grown = grow_array(m->module_tensors, m->module_count, sizeof *grown);
        if (grown)
            m->module_tensors = grown;
        int rc = grown ? add_name(&m->module_names, &m->module_count, name, origin, err)
                       : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
        if (rc)
            return rc;
        m->module_tensors[m->module_count - 1] = t;
    }
    return CKPT_OK;
}

static int visit_model(void *ctx, const struct pk_value *root, const char *origin, ckpt_error *err)
{
    struct ds_model *m = ctx;
    int rc = model_names(m, root, origin, err);
    return rc ? rc : model_shapes(m, root, origin, err);
}

/*
 * The stage: an int, or DeepSpeed's ZeroStageEnum as pickled: by value,
 * ZeroStageEnum(2), or by member name, getattr(ZeroStageEnum, "gradients").
 */
static bool stage_value(const struct pk_value *v, int64_t *out)
{
    static const char *const members[] = {"disabled", "optimizer_states", "gradients", "weights"};
    if (pk_int(v, out))
        return true;
    if (!v || v->kind != PK_CALL || !v->args || v->args->kind != PK_TUPLE)
        return false;
    const struct pk_value *a = v->args;
    if (pk_is_global(v->fn, "deepspeed.runtime.zero.config", "ZeroStageEnum"))
        return a->count == 1 && pk_int(a->items[0], out);
    if (a->count != 2 || !pk_is_global(a->items[0], "deepspeed.runtime.zero.config", "ZeroStageEnum"))
        return false;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (pk_str(a->items[1]) && strcmp(pk_str(a->items[1]), members[i]) == 0) {
            *out = (int64_t)i;
            return true;
        }
    return false;
}

/* partition_count: an int, or one per group (expert groups may differ; the largest is the world). */
static bool world_value(const struct pk_value *v, int64_t *out)
{
    if (pk_int(v, out))
        return *out > 0;
    if (!v || (v->kind != PK_LIST && v->kind != PK_TUPLE) || v->count == 0)
        return false;
    *out = 0;
    for (size_t i = 0; i < v->count; i++) {
        int64_t n;
        if (!pk_int(v->items[i], &n) || n <= 0)
            return false;
        if (n > *out)
            *out = n;
    }
    return true;
}

static int visit_optim(void *ctx, const struct pk_value *root, const char *origin, ckpt_error *err)
{
    struct ds_optim *o = ctx;
    const struct pk_value *sd = dict_get(root, "optimizer_state_dict");
    if (!stage_value(dict_get(sd, "zero_stage"), &o->stage))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: optimizer_state_dict has no zero_stage: not a ZeRO checkpoint",
                         origin);
    if (o->stage < 1 || o->stage > 3)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: ZeRO stage %lld is not 1, 2 or 3", origin,
                         (long long)o->stage);
    if (!world_value(dict_get(sd, "partition_count"), &o->world))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: partition_count is missing or not a positive count", origin);
    const char *key = o->stage == 3 ? "fp32_flat_groups" : "single_partition_of_fp32_groups";
    const struct pk_value *groups = dict_get(sd, key);
    if (!groups || (groups->kind != PK_LIST && groups->kind != PK_TUPLE))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is missing or not a list", origin, key);
    if (groups->count > DS_MAX_ENTRIES || !(o->flat = calloc(groups->count + 1, sizeof *o->flat)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory reading %s", origin, key);
    for (size_t g = 0; g < groups->count; g++) {
        if ((o->flat[g] = tensor_of(groups->items[g])) == SIZE_MAX)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s.%zu is not a tensor", origin, key, g);
    }
    o->flat_count = groups->count;
    /* MoE: an expert group is partitioned over its expert-data-parallel ranks only (stage_1_and_2.py:765-792) */
    const struct pk_value *counts = dict_get(sd, "partition_count");
    if (counts && (counts->kind == PK_LIST || counts->kind == PK_TUPLE)) {
        if (counts->count != groups->count)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: partition_count has %zu entries for %zu groups", origin,
                             counts->count, groups->count);
        if (!(o->group_world = calloc(counts->count + 1, sizeof *o->group_world)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
        for (size_t g = 0; g < counts->count; g++)
            pk_int(counts->items[g], &o->group_world[g]);   /* world_value checked each */
    }
    return CKPT_OK;
}

int ds_load(struct ckpt_source *src, const char *path, struct ds_file *f, torch_visit_fn visit, void *ctx,
            ckpt_error *err)
{
    uint32_t file;
    if (!(f->path = strdup(path)) || !(f->scratch = source_new(path, &src->limits)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    source_share_fs(f->scratch, src);
    int rc = source_add_file(f->scratch, path, &file, err);
    if (rc)
        return rc;
    const struct source_file *sf = &f->scratch->files[file];
    if (sf->size < 4 || memcmp(sf->data, "PK\x03\x04", 4) != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a torch.save zip archive", path);
    rc = torch_load_zip_visit(f->scratch, file, visit, ctx, err);
    return rc ? rc : source_adopt_files(src, f->scratch, &f->base, err);
}

int ds_model_load(struct ckpt_source *src, const char *path, struct ds_model *m, ckpt_error *err)
{
    return ds_load(src, path, &m->file, visit_model, m, err);
}

int ds_optim_load(struct ckpt_source *src, const char *path, struct ds_optim *o, ckpt_error *err)
{
    return ds_load(src, path, &o->file, visit_optim, o, err);
}

static void file_free(struct ds_file *f)
{
    free(f->path);
    ckpt_source_free(f->scratch);
}

static void names_free(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static void params_free(struct ds_param *p, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(p[i].name);
    free(p);
}

void ds_model_free(struct ds_model *m)
{
    file_free(&m->file);
    params_free(m->params, m->param_count);
    params_free(m->frozen, m->frozen_count);
    free(m->group_end);
    names_free(m->buffers, m->buffer_count);
    names_free(m->shared, m->shared_count);
    names_free(m->module_names, m->module_count);
    free(m->module_tensors);
}

void ds_optim_free(struct ds_optim *o)
{
    file_free(&o->file);
    free(o->flat);
    free(o->group_world);
}

int ds_declare(struct ckpt_source *src, const struct ds_file *f, size_t index, const char *name, ckpt_error *err)
{
    const struct tensor_entry *t = &f->scratch->tensors[index];
    if (t->parts)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: tensor %s is stored in pieces", f->path, name);
    struct tensor_view v = t->view;
    v.file += f->base;
    v.strides = t->strides;
    return source_add_tensor(src, name, t->pub.dtype, t->pub.rank, t->shape, &v, err);
}
