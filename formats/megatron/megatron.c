/*
 * megatron.c: Megatron-LM checkpoints in the legacy layout, opened as one
 * checkpoint of full tensors.
 *
 * A folder holding `latest_checkpointed_iteration.txt` (an iteration or
 * "release"), or a single `iter_NNNNNNN` / `release` folder, or that folder
 * itself, with `mp_rank_TT/model_optim_rng.pt` (`mp_rank_TT_PPP/...` when
 * pipeline-parallel) for every tensor-parallel rank TT and pipeline stage
 * PPP.  Each file is a torch.save of `args`, `iteration`, `model` and the
 * optimizer and RNG state; only `model` becomes tensors.  The sizes and the
 * shape come from the checkpoint's own args (megatron_args.c), which every
 * rank must agree on.
 *
 * Merging declares pieces, never copies: column-parallel weights
 * (megatron_merge.c) are the ranks' parts stacked on dim 0 (SwiGLU fc1 as
 * all gate halves then all up halves), row-parallel weights on dim 1, and
 * every other tensor is replicated: checked byte-equal across the
 * tensor-parallel ranks and exposed once.  Layer numbers, local to each
 * pipeline stage, become global by adding the stage's first layer.  An
 * iteration folder holding a torch_dist checkpoint instead goes to that
 * reader.
 */
#include "megatron.h"

#include "formats/common/format.h"
#include "libckpt/common/error.h"
#include "megatron_args.h"
#include "formats/common/shard_index.h"
#include "formats/torch/torch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LATEST "latest_checkpointed_iteration.txt"
#define RANK_FILE "model_optim_rng.pt"
#define MAX_LATEST 64
#define MAX_RANKS 4096

/* A folder holding rank 0's file under either naming (tensor-parallel only, or with a stage). */
static bool holds_ranks(const struct ckpt_fs *fs, const char *dir)
{
    char path[4096];
    return (snprintf(path, sizeof path, "%s/mp_rank_00", dir) < (int)sizeof path &&
            format_dir_has(fs, path, RANK_FILE)) ||
           (snprintf(path, sizeof path, "%s/mp_rank_00_000", dir) < (int)sizeof path &&
            format_dir_has(fs, path, RANK_FILE));
}

static bool is_iteration_name(const char *name)
{
    return strcmp(name, "release") == 0 || (strncmp(name, "iter_", 5) == 0 && name[5]);
}

/* The one iteration folder of `dir` (malloc'd path), or NULL when there is none or more than one. */
static char *only_iteration(const struct ckpt_fs *fs, const char *dir)
{
    char **folders;
    size_t count, iterations = 0;
    if (fs_list_folders(fs, dir, &folders, &count, NULL) != CKPT_OK)
        return NULL;
    char *found = NULL;
    for (size_t i = 0; i < count; i++) {
        if (!is_iteration_name(strrchr(folders[i], '/') + 1))
            continue;
        if (iterations++ == 0) {
            found = folders[i];
            folders[i] = NULL;
        }
    }
    path_list_free(folders, count);
    if (iterations != 1) {
        free(found);
        return NULL;
    }
    return found;
}

static bool megatron_probe(const struct format_probe *p)
{
    if (!p->is_dir)
        return false;
    if (format_dir_has(p->fs, p->path, LATEST) || holds_ranks(p->fs, p->path))
        return true;
    char *iter = only_iteration(p->fs, p->path);
    bool yes = iter && holds_ranks(p->fs, iter);
    free(iter);
    return yes;
}

/* The iteration folder `latest_checkpointed_iteration.txt` names: "release" or iter_%07d. */
static int latest_iteration(const struct ckpt_fs *fs, const char *dir, char **out, ckpt_error *err)
{
    char *path = path_join(dir, LATEST), text[MAX_LATEST] = "";
    if (!path)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    int rc = read_tag_file(fs, path, text, sizeof text, "an iteration number", err);
    char name[32];
    if (!rc && strcmp(text, "release") == 0) {
        snprintf(name, sizeof name, "release");
    } else if (!rc) {
        char *end;
        errno = 0;
        long long it = strtoll(text, &end, 10);
        if (!text[0] || *end || errno || it < 0 || it > 9999999999LL)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: '%s' is neither an iteration number nor 'release'", path,
                           text);
        else
            snprintf(name, sizeof name, "iter_%07lld", it);
    }
    if (!rc)
        rc = named_folder(fs, dir, name, path, out, err);
    free(path);
    return rc;
}

/* The folder holding the rank folders (malloc'd). */
static int iteration_folder(const struct ckpt_fs *fs, const char *dir, char **out, ckpt_error *err)
{
    if (format_dir_has(fs, dir, LATEST))
        return latest_iteration(fs, dir, out, err);
    if (!holds_ranks(fs, dir) && (*out = only_iteration(fs, dir)) != NULL)
        return CKPT_OK;
    if (!(*out = strdup(dir)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    return CKPT_OK;
}

/* iter/mp_rank_TT[_PPP]/model_optim_rng.pt, as Megatron names it: the stage only when pipeline-parallel. */
static char *rank_path(const char *iter, long tp, long pp, long pp_size)
{
    char name[128];
    if (pp_size > 1)
        snprintf(name, sizeof name, "mp_rank_%02ld_%03ld/%s", tp, pp, RANK_FILE);
    else
        snprintf(name, sizeof name, "mp_rank_%02ld/%s", tp, RANK_FILE);
    return path_join(iter, name);
}

static int load_rank(const struct ckpt_source *src, const char *path, struct ckpt_source **out, ckpt_error *err)
{
    if (!fs_is_file(src->fs, path))
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: missing: the checkpoint's args ask for this rank file", path);
    struct ckpt_source *s = source_new(path, &src->limits);
    if (!s)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    source_share_fs(s, src);
    int rc = torch_load_file(s, path, err);
    if (rc) {
        ckpt_source_free(s);
        return rc;
    }
    *out = s;
    return CKPT_OK;
}

/* The args every rank must agree on, and the features this reader refuses. */
static const char *const shape_args[] = {
    "args.num_layers", "args.hidden_size", "args.ffn_hidden_size", "args.num_attention_heads",
    "args.num_query_groups", "args.group_query_attention", "args.kv_channels", "args.swiglu",
    "args.padded_vocab_size", "args.tensor_model_parallel_size", "args.pipeline_model_parallel_size",
    "args.virtual_pipeline_model_parallel_size", "args.decoder_first_pipeline_num_layers",
    "args.decoder_last_pipeline_num_layers", "args.expert_model_parallel_size", "checkpoint_version",
};

static const ckpt_object *object(const struct ckpt_source *s, const char *name)
{
    for (size_t i = 0; i < s->object_count; i++)
        if (strcmp(s->objects[i].name, name) == 0)
            return &s->objects[i];
    return NULL;
}

static bool arg_int(const struct ckpt_source *s, const char *name, long *out)
{
    const ckpt_object *o = object(s, name);
    char *end;
    if (!o || strcmp(o->kind, "int") != 0)
        return false;
    *out = strtol(o->value, &end, 10);
    return *end == '\0';
}

/* An arg that, set, asks for a layout this reader does not merge. */
static bool arg_set(const struct ckpt_source *s, const char *name)
{
    const ckpt_object *o = object(s, name);
    long v;
    if (!o || strcmp(o->kind, "none") == 0)
        return false;
    return !(arg_int(s, name, &v) && v <= 1 && strstr(name, "expert"));
}

static int check_agree(const struct ckpt_source *first, const struct ckpt_source *s, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof shape_args / sizeof shape_args[0]; i++) {
        const ckpt_object *a = object(first, shape_args[i]), *b = object(s, shape_args[i]);
        if (!a && !b)
            continue;
        if (!a || !b || strcmp(a->value, b->value) != 0)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %s is %s but %s in %s", s->path, shape_args[i],
                             b ? b->value : "(missing)", a ? a->value : "(missing)", first->path);
    }
    return CKPT_OK;
}

/* The parallel sizes and layer split from rank 0's args, refusing what is not merged here. */
static int read_sizes(const struct ckpt_source *s, struct megatron_layout *lay, ckpt_error *err)
{
    if (!arg_int(s, "args.tensor_model_parallel_size", &lay->tp) ||
        !arg_int(s, "args.pipeline_model_parallel_size", &lay->pp) || !arg_int(s, "args.num_layers", &lay->layers))
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: args lack tensor_model_parallel_size, pipeline_model_parallel_size or num_layers",
                         s->path);
    if (lay->tp < 1 || lay->pp < 1 || lay->layers < 1 || lay->tp > MAX_RANKS || lay->pp > MAX_RANKS ||
        lay->tp * lay->pp > MAX_RANKS)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: tensor-parallel size %ld, pipeline size %ld, %ld layers",
                         s->path, lay->tp, lay->pp, lay->layers);
    static const char *const refused[] = {
        "args.virtual_pipeline_model_parallel_size", "args.num_layers_per_virtual_pipeline_stage",
        "args.decoder_first_pipeline_num_layers", "args.decoder_last_pipeline_num_layers",
        "args.expert_model_parallel_size",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (arg_set(s, refused[i]))
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: %s = %s is not supported (uniform pipeline stages only)",
                             s->path, refused[i], object(s, refused[i])->value);
    if (lay->layers % lay->pp)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: %ld layers do not split evenly over %ld pipeline stages",
                         s->path, lay->layers, lay->pp);
    for (size_t i = 0; i < s->tensor_count; i++)
        if (strncmp(s->tensors[i].pub.name, "model0.", 7) == 0)
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED,
                             "%s: virtual pipeline stages (model0, model1, ...) are not supported", s->path);
    return CKPT_OK;
}

/* Rank 0's args and iteration as megatron.* metadata, and its args as objects for inspect --objects. */
static int record_args(struct ckpt_source *src, const struct ckpt_source *s, ckpt_error *err)
{
    int rc = megatron_args_record(src, s, s->path, err);
    for (size_t i = 0; i < s->object_count && !rc; i++) {
        const ckpt_object *o = &s->objects[i];
        if (strncmp(o->name, "args.", 5) == 0 || strcmp(o->name, "iteration") == 0 ||
            strcmp(o->name, "checkpoint_version") == 0)
            rc = source_add_object(src, o->name, o->kind, o->value, err);
    }
    return rc;
}

static int open_ranks(struct ckpt_source *src, const char *iter, ckpt_error *err)
{
    struct megatron_layout lay = {0};
    struct ckpt_source *first = NULL, **ranks = NULL;
    char *path = NULL;
    char tp_only[4096];
    bool staged = snprintf(tp_only, sizeof tp_only, "%s/mp_rank_00", iter) < (int)sizeof tp_only &&
                  !format_dir_has(src->fs, tp_only, RANK_FILE);
    path = rank_path(iter, 0, 0, staged ? 2 : 1);
    int rc = path ? load_rank(src, path, &first, err) : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", iter);
    if (!rc)
        rc = read_sizes(first, &lay, err);
    if (!rc && (lay.pp > 1) != staged)
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args give pipeline size %ld, the folder name says otherwise", path,
                       lay.pp);
    free(path);
    if (!rc && !(ranks = calloc((size_t)(lay.tp * lay.pp), sizeof *ranks)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", iter);
    for (long p = 0; !rc && p < lay.pp; p++)
        for (long t = 0; !rc && t < lay.tp; t++) {
            struct ckpt_source **slot = &ranks[p * lay.tp + t];
            if (p == 0 && t == 0) {
                *slot = first;
                first = NULL;
                continue;
            }
            if (!(path = rank_path(iter, t, p, lay.pp)))
                rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", iter);
            if (!rc)
                rc = load_rank(src, path, slot, err);
            if (!rc)
                rc = check_agree(ranks[0], *slot, err);
            free(path);
        }
    if (!rc)
        rc = record_args(src, ranks[0], err);
    if (!rc)
        rc = megatron_merge(src, ranks, &lay, err);
    ckpt_source_free(first);
    for (long i = 0; ranks && i < lay.tp * lay.pp; i++)
        ckpt_source_free(ranks[i]);
    free(ranks);
    return rc;
}

static int megatron_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    char *iter = NULL;
    int rc = iteration_folder(src->fs, path, &iter, err);
    if (rc)
        return rc;
    if (format_dir_has(src->fs, iter, "metadata.json") && format_dir_has(src->fs, iter, ".metadata"))
        rc = format_megatron_torch_dist.open(src, iter, err);
    else
        rc = open_ranks(src, iter, err);
    free(iter);
    return rc;
}

const struct format_reader format_megatron = {"megatron", megatron_probe, megatron_open};
