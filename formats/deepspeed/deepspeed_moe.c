/*
 * deepspeed_moe.c: the expert files of a DeepSpeed MoE checkpoint (native
 * deepspeed.moe.layer.MoE), docs/deepspeed.md.
 *
 * DeepSpeed keeps every routed expert out of the model states' module
 * (engine.py _get_non_moe_state_dict) and saves each one alone as
 * layer_{L}_expert_{E}_mp_rank_00_model_states.pt: a flat dict of that
 * expert's 16-bit weights, keyed `P.deepspeed_moe.experts.deepspeed_experts.E.*`
 * with the global expert id (engine.py _save_moe_checkpoint).  L counts the
 * MoE modules in module order; it is not a layer number.  So a tensor is
 * placed by its key; the file name is only checked against it: file L must
 * hold the L-th MoE module's experts (the one whose router is the L-th in
 * the module), file E expert E, each expert of each module in one file.
 */
#include "deepspeed.h"

#include "formats/common/shard_index.h"
#include "formats/torch/pickle.h"
#include "libckpt/common/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPERTS ".deepspeed_moe.experts.deepspeed_experts."
#define ROUTER ".deepspeed_moe.gate.wg.weight"
#define MAX_EXPERTS 65536L
#define MAX_MOE_LAYERS 65536L

/* Reads a decimal count at *s (advancing it), below `limit`; false when there is none. */
static bool count_at(const char **s, long limit, long *out)
{
    if (!isdigit((unsigned char)**s))
        return false;
    char *end;
    *out = strtol(*s, &end, 10);
    *s = end;
    return *out >= 0 && *out < limit;
}

bool ds_expert_file(const char *base, long *layer, long *expert, long *mp)
{
    const char *s = base;
    *layer = -1;
    if (strncmp(s, "layer_", 6) == 0) {
        s += 6;
        if (!count_at(&s, MAX_MOE_LAYERS, layer) || *s++ != '_')
            return false;
    }
    if (strncmp(s, "expert_", 7) != 0)
        return false;
    s += 7;
    if (!count_at(&s, MAX_EXPERTS, expert) || strncmp(s, "_mp_rank_", 9) != 0)
        return false;
    s += 9;
    return count_at(&s, 100000, mp) && strcmp(s, "_model_states.pt") == 0;
}

/* One expert file's flat dict: names and their tensors in file.scratch. */
struct expert_file {
    struct ds_file file;
    long layer, expert;
    const char **names;   /* into `keys`, which the pickle no longer owns once copied */
    char **keys;
    size_t *tensors;
    size_t count;
};

static int visit_expert(void *ctx, const struct pk_value *root, const char *origin, ckpt_error *err)
{
    struct expert_file *x = ctx;
    if (!root || root->kind != PK_DICT)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not a dict of an expert's tensors", origin);
    size_t n = root->count / 2;
    if (!(x->keys = calloc(n + 1, sizeof *x->keys)) || !(x->tensors = calloc(n + 1, sizeof *x->tensors)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
    for (size_t i = 0; i < n; i++) {
        const char *name = pk_str(root->items[2 * i]);
        const struct pk_value *v = root->items[2 * i + 1];
        if (!name || !v || v->kind != PK_CALL || v->tag < 0)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds an entry that is not a named tensor", origin);
        if (!(x->keys[i] = strdup(name)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", origin);
        x->tensors[i] = (size_t)v->tag;
        x->count++;
    }
    return x->count ? CKPT_OK : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: holds no tensor", origin);
}

static void expert_file_free(struct expert_file *x)
{
    for (size_t i = 0; i < x->count; i++)
        free(x->keys[i]);
    free(x->keys);
    free(x->tensors);
    free(x->file.path);
    ckpt_source_free(x->file.scratch);
    memset(x, 0, sizeof *x);
}

/* What one MoE module of the model states is: its path P, its router's expert count, the experts seen. */
struct moe_module {
    char *path;
    long experts;          /* rows of P.deepspeed_moe.gate.wg.weight */
    unsigned char *seen;   /* per expert */
};

/* The MoE modules, in module order: one per router the model states' module holds. */
static int find_modules(const struct ds_model *m, struct moe_module **out, size_t *count, ckpt_error *err)
{
    *out = calloc(m->module_count + 1, sizeof **out);
    if (!*out)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", m->file.path);
    size_t n = strlen(ROUTER);
    for (size_t i = 0; i < m->module_count; i++) {
        const char *name = m->module_names[i];
        size_t len = strlen(name);
        if (len <= n || strcmp(name + len - n, ROUTER) != 0)
            continue;
        const struct tensor_entry *t = &m->file.scratch->tensors[m->module_tensors[i]];
        struct moe_module *mod = &(*out)[(*count)++];
        if (t->pub.rank != 2 || t->shape[0] == 0 || t->shape[0] > (uint64_t)MAX_EXPERTS)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: router %s is not [experts, hidden]", m->file.path, name);
        mod->experts = (long)t->shape[0];
        if (!(mod->path = strndup(name, len - n)) || !(mod->seen = calloc((size_t)mod->experts, 1)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", m->file.path);
    }
    return CKPT_OK;
}

/*
 * Checks that every key of `x` is expert x->expert's of module `mod`
 * (layer x->layer), and declares its tensors under their keys.
 */
static int place(struct ckpt_source *src, struct expert_file *x, struct moe_module *mod, ckpt_error *err)
{
    size_t plen = strlen(mod->path), elen = strlen(EXPERTS);
    for (size_t i = 0; i < x->count; i++) {
        const char *key = x->keys[i], *at = strstr(key, EXPERTS);
        if (!at)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is not a DeepSpeed expert's tensor (no '%s')",
                             x->file.path, key, &EXPERTS[1]);
        const char *id = at + elen;
        long e;
        if (!count_at(&id, MAX_EXPERTS, &e) || *id != '.')
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s names no expert id", x->file.path, key);
        if ((size_t)(at - key) != plen || strncmp(key, mod->path, plen) != 0)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is not under %s, MoE layer %ld's module (routers "
                             "counted in module order)", x->file.path, key, mod->path, x->layer);
        if (e != x->expert)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is expert %ld's, but the file is named for expert %ld",
                             x->file.path, key, e, x->expert);
        int rc = ds_declare(src, &x->file, x->tensors[i], key, err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

static int by_layer_then_expert(const void *a, const void *b)
{
    const struct expert_file *x = a, *y = b;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    return x->expert < y->expert ? -1 : x->expert > y->expert;
}

int ds_moe_declare(struct ckpt_source *src, const char *dir, char *const *paths, size_t count,
                   const struct ds_model *m, ckpt_error *err)
{
    struct moe_module *mods = NULL;
    size_t nmods = 0;
    struct expert_file *files = calloc(count + 1, sizeof *files);
    int rc = files ? find_modules(m, &mods, &nmods, err) : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    for (size_t i = 0; i < count && !rc; i++) {
        const char *slash = strrchr(paths[i], '/');
        long mp;
        if (!ds_expert_file(slash ? slash + 1 : paths[i], &files[i].layer, &files[i].expert, &mp))
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not named as a DeepSpeed expert file", paths[i]);
        else if (files[i].layer < 0)
            rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: an expert file of DeepSpeed before 0.6 (every layer's "
                           "expert in one file, no layer id): not read", paths[i]);
        else if (nmods == 0)
            rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: expert files, but %s holds no native MoE router (*%s): "
                           "DeepSpeed AutoEP checkpoints (keys experts.w1.E, ds_autoep_layers) are not read", paths[i],
                           m->file.path, ROUTER);
        else if ((size_t)files[i].layer >= nmods)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: MoE layer %ld, but %s has routers for %zu", paths[i],
                           files[i].layer, m->file.path, nmods);
        else if (files[i].expert >= mods[files[i].layer].experts)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: expert %ld, but router %s%s has %ld", paths[i],
                           files[i].expert, mods[files[i].layer].path, ROUTER, mods[files[i].layer].experts);
        else if (mods[files[i].layer].seen[files[i].expert]++)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: a second file for MoE layer %ld's expert %ld", paths[i],
                           files[i].layer, files[i].expert);
    }
    for (size_t l = 0; l < nmods && !rc; l++)
        for (long e = 0; e < mods[l].experts && !rc; e++)
            if (!mods[l].seen[e])
                rc = ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s/layer_%zu_expert_%ld_mp_rank_00_model_states.pt: missing "
                               "(expert %ld of %ld of %s)", dir, l, e, e, mods[l].experts, mods[l].path);
    if (!rc)
        qsort(files, count, sizeof *files, by_layer_then_expert);
    /* in layer, then expert order; each path re-derived from the numbers its name gave */
    for (size_t i = 0; i < count && !rc; i++) {
        char name[96];
        snprintf(name, sizeof name, "layer_%ld_expert_%ld_mp_rank_00_model_states.pt", files[i].layer,
                 files[i].expert);
        char *path = path_join(dir, name);
        rc = path ? ds_load(src, path, &files[i].file, visit_expert, &files[i], err)
                  : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
        free(path);
        if (!rc)
            rc = place(src, &files[i], &mods[files[i].layer], err);
        expert_file_free(&files[i]);   /* its files are the source's now */
    }
    char text[32];
    snprintf(text, sizeof text, "%zu", nmods);
    if (!rc)
        rc = source_add_metadata(src, "deepspeed.moe_layers", text, dir, err);
    snprintf(text, sizeof text, "%ld", nmods ? mods[0].experts : 0L);
    if (!rc)
        rc = source_add_metadata(src, "deepspeed.num_experts", text, dir, err);
    for (size_t i = 0; files && i < count; i++)
        expert_file_free(&files[i]);
    for (size_t l = 0; l < nmods; l++) {
        free(mods[l].path);
        free(mods[l].seen);
    }
    free(mods);
    free(files);
    return rc;
}
