/*
 * megatron_dist.c: Megatron-core `torch_dist` checkpoints and the NeMo 2
 * folders that hold one, read on top of the DCP reader.
 *
 * A torch_dist folder is a DCP folder plus `metadata.json`
 * ({"sharded_backend": "torch_dist", ...}) and the state that is not
 * sharded (args, iteration, content_metadata): `common.pt`, or from
 * Megatron core 0.19 the DCP bytes entry `common_state/shard_0_1`, a
 * torch.save of [that state], read here by the same safe torch reader.  Its
 * tensors are already global (fused SwiGLU fc1 as [all gate rows; all up
 * rows]), but Megatron stacks the layers of a transformer block into one
 * tensor with a leading layer axis (`decoder.layers.mlp.linear_fc1.weight`
 * [L, ...]) and a layer's routed experts on the next
 * (`...mlp.experts.experts.linear_fc1.weight` [E, 2F, H], [L, E, 2F, H]
 * when stacked); those are declared as the per-layer, per-expert tensors
 * Megatron's own state dict has (`decoder.layers.0.mlp.linear_fc1.weight`,
 * `decoder.layers.0.mlp.experts.local_experts.5.linear_fc1.weight`), so
 * that rules written for Megatron names apply to every layout.  Optimizer
 * state (`optimizer.*`) is left out: these readers are for the model.
 * Checkpoints saved with singleton_local_shards (one key per expert, GLU
 * halves apart), which Megatron's training never writes, are refused.
 *
 * NeMo 2 saves `weights/` (a torch_dist folder whose names start with
 * `module.`, dropped here) beside `context/` (the model's configuration,
 * read by nemo2_config.c).
 */
#include "formats/dcp/dcp.h"

#include "formats/common/format.h"
#include "libckpt/common/error.h"
#include "megatron_args.h"
#include "nemo2_config.h"
#include "formats/common/shard_index.h"
#include "formats/torch/torch.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIST_METADATA "metadata.json"
#define DIST_COMMON "common.pt"
#define NEMO_WEIGHTS "weights"
#define NEMO_PREFIX "module."
#define OPTIMIZER_PREFIX "optimizer."
#define COMMON_STATE "common_state/shard_0_1"
#define EXPERTS ".mlp.experts.experts."

struct dist {
    const char *drop_prefix;   /* a prefix every name carries, dropped (NeMo 2's "module."), or NULL */
    bool has_common;           /* common.pt was read: a common_state entry is not looked at */
};

/* The name without the dropped prefix. */
static const char *short_name(const struct dist *d, const char *name)
{
    size_t n = d->drop_prefix ? strlen(d->drop_prefix) : 0;
    return n && strncmp(name, d->drop_prefix, n) == 0 ? name + n : name;
}

static bool keep_model(void *ctx, const struct dcp_entry *e)
{
    return strncmp(short_name(ctx, e->name), OPTIMIZER_PREFIX, strlen(OPTIMIZER_PREFIX)) != 0;
}

/* Where the layer index goes in a stacked name: just after a "layers." part that no number follows. */
static const char *stacked_at(const char *name)
{
    for (const char *p = name; (p = strstr(p, "layers.")) != NULL; p += 7) {
        bool part_start = p == name || p[-1] == '.';
        if (part_start && !(p[7] >= '0' && p[7] <= '9') && p[7] != '\0')
            return p + 7;
    }
    return NULL;
}

/* A layer's routed experts, stacked on an expert axis: where the expert index goes, or NULL. */
static const char *experts_at(const char *name)
{
    const char *p = strstr(name, EXPERTS);
    return p && strncmp(p + strlen(EXPERTS), "linear_fc", 9) == 0 ? p : NULL;
}

/* singleton_local_shards: ...experts.experts.{G}.linear_fc1.weight_w and _v, one key per expert and GLU half. */
static int check_entry(void *ctx, const struct dcp_entry *e, const char *dir, ckpt_error *err)
{
    const char *s = short_name(ctx, e->name), *p = strstr(s, EXPERTS);
    if (p && p[strlen(EXPERTS)] >= '0' && p[strlen(EXPERTS)] <= '9')
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: entry %s: one key per expert (saved with "
                         "singleton_local_shards) is not supported", dir, e->name);
    return CKPT_OK;
}

static unsigned split_axes(void *ctx, const struct dcp_entry *e)
{
    const char *s = short_name(ctx, e->name);
    return (stacked_at(s) != NULL) + (experts_at(s) != NULL);
}

/*
 * decoder.layers.mlp.experts.experts.linear_fc1.weight at (layer 3, expert 5) is
 * decoder.layers.3.mlp.experts.local_experts.5.linear_fc1.weight, as SequentialMLP names it.
 */
static bool rename_entry(void *ctx, const char *name, const uint64_t *index, unsigned axes, char *out, size_t cap)
{
    const char *s = short_name(ctx, name), *layer = axes ? stacked_at(s) : NULL, *expert = axes ? experts_at(s) : NULL;
    size_t n = 0;
    unsigned k = 0;
    for (const char *p = s; *p && n < cap;) {
        int w = 0;
        if (p == layer && k < axes) {
            w = snprintf(out + n, cap - n, "%llu.", (unsigned long long)index[k++]);
            layer = NULL;
        } else if (p == expert && layer == p + 1 && k + 1 < axes) {   /* decoder.layers.mlp.experts.experts. */
            w = snprintf(out + n, cap - n, ".%llu.mlp.experts.local_experts.%llu.", (unsigned long long)index[0],
                         (unsigned long long)index[1]);
            k += 2;
            layer = NULL;
            p += strlen(EXPERTS);
        } else if (p == expert && k < axes) {
            w = snprintf(out + n, cap - n, ".mlp.experts.local_experts.%llu.", (unsigned long long)index[k++]);
            p += strlen(EXPERTS);
        } else {
            out[n++] = *p++;
            continue;
        }
        if (w < 0 || (size_t)w >= cap - n)
            return false;
        n += (size_t)w;
    }
    if (n >= cap)
        return false;
    out[n] = '\0';
    return k == axes;
}

/* metadata.json must name the torch_dist backend: Megatron's other backends (zarr) are not DCP. */
static int check_backend(struct ckpt_source *src, const char *dir, ckpt_error *err)
{
    char *path = path_join(dir, DIST_METADATA);
    uint32_t file;
    int rc = path ? source_add_file(src, path, &file, err) : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    if (!rc && src->files[file].size > src->limits.max_header_bytes)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: larger than max_header_bytes", path);
    json_t *root = NULL;
    if (!rc) {
        json_error_t jerr;
        root = json_loadb((const char *)src->files[file].data, (size_t)src->files[file].size, JSON_REJECT_DUPLICATES,
                          &jerr);
        if (!root)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not valid JSON: %s", path, jerr.text);
    }
    const char *backend = root ? json_string_value(json_object_get(root, "sharded_backend")) : NULL;
    if (!rc && (!backend || strcmp(backend, "torch_dist") != 0))
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: sharded_backend %s is not torch_dist", path,
                       backend ? backend : "(missing)");
    json_decref(root);
    free(path);
    return rc;
}

/* Refuses a common state whose content_metadata says the experts were saved one key each. */
static int check_content(const struct ckpt_source *s, const char *prefix, const char *path, ckpt_error *err)
{
    char name[64];
    snprintf(name, sizeof name, "%scontent_metadata.singleton_local_shards", prefix);
    for (size_t i = 0; i < s->object_count; i++)
        if (strcmp(s->objects[i].name, name) == 0 && strcmp(s->objects[i].value, "True") == 0)
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: content_metadata.singleton_local_shards is True: one key "
                             "per expert is not supported", path);
    return CKPT_OK;
}

/* common.pt: its args become megatron.* metadata; the file joins the source (for manifests). */
static int read_common(struct ckpt_source *src, const char *dir, struct dist *d, ckpt_error *err)
{
    if (!format_dir_has(src->fs, dir, DIST_COMMON))
        return CKPT_OK;
    char *path = path_join(dir, DIST_COMMON);
    struct ckpt_source *s = path ? source_new(path, &src->limits) : NULL;
    if (!s) {
        free(path);
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    }
    s->objects_only = true;
    source_share_fs(s, src);
    uint32_t base;
    int rc = torch_load_file(s, path, err);
    if (!rc)
        rc = megatron_args_record(src, s, path, err);
    if (!rc)
        rc = check_content(s, "", path, err);
    if (!rc)
        rc = source_adopt_files(src, s, &base, err);
    d->has_common = !rc;
    ckpt_source_free(s);
    free(path);
    return rc;
}

/* Core >= 0.19: the common state is the bytes entry common_state/shard_0_1, torch.save([state]). */
static int read_common_state(void *ctx, struct ckpt_source *src, const struct dcp_entry *e, uint32_t file,
                             ckpt_error *err)
{
    struct dist *d = ctx;
    if (d->has_common || strcmp(short_name(d, e->name), COMMON_STATE) != 0)
        return CKPT_OK;
    char name[4200];
    snprintf(name, sizeof name, "%s (%s)", src->files[file].path, e->name);
    struct ckpt_source *s = source_new(name, &src->limits);
    if (!s)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", name);
    s->objects_only = true;
    uint32_t slice;
    int rc = source_add_borrowed(s, &src->files[file], e->bytes.offset, e->bytes.length, name, &slice, err);
    if (!rc)
        rc = torch_load_at(s, slice, err);
    if (!rc)
        rc = megatron_args_record_under(src, s, "0.", name, err);
    if (!rc)
        rc = check_content(s, "0.", name, err);
    ckpt_source_free(s);
    return rc;
}

static int open_dist(struct ckpt_source *src, const char *dir, const char *drop_prefix, ckpt_error *err)
{
    struct dist d = {drop_prefix, false};
    struct dcp_options opt = {keep_model, check_entry, split_axes, rename_entry, read_common_state, &d};
    int rc = check_backend(src, dir, err);
    if (!rc)
        rc = read_common(src, dir, &d, err);
    return rc ? rc : dcp_load_folder(src, dir, &opt, err);
}

/*
 * A DCP folder whose metadata.json names the torch_dist backend (its first
 * bytes suffice: Megatron writes a few keys); a plain DCP folder that
 * merely holds some other metadata.json is left to the DCP reader.
 */
static bool names_torch_dist(const struct ckpt_fs *fs, const char *dir)
{
    char path[4096], text[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, DIST_METADATA) >= (int)sizeof path)
        return false;
    long n = fs_read_head(fs, path, text, sizeof text - 1);
    if (n <= 0)
        return false;
    text[n] = '\0';
    return strstr(text, "\"torch_dist\"") != NULL;
}

static bool torch_dist_probe(const struct format_probe *p)
{
    return p->is_dir && format_dir_has(p->fs, p->path, ".metadata") && names_torch_dist(p->fs, p->path);
}

static int torch_dist_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    return open_dist(src, path, NULL, err);
}

static bool nemo2_probe(const struct format_probe *p)
{
    char weights[4096];
    return p->is_dir && snprintf(weights, sizeof weights, "%s/%s", p->path, NEMO_WEIGHTS) < (int)sizeof weights &&
           format_dir_has(p->fs, weights, ".metadata") && names_torch_dist(p->fs, weights);
}

static int nemo2_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    char *weights = path_join(path, NEMO_WEIGHTS);
    int rc = weights ? open_dist(src, weights, NEMO_PREFIX, err) : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    free(weights);
    return rc ? rc : nemo2_config_record(src, path, err);
}

const struct format_reader format_megatron_torch_dist = {"megatron-torch-dist", torch_dist_probe, torch_dist_open};
const struct format_reader format_nemo2 = {"nemo2", nemo2_probe, nemo2_open};
