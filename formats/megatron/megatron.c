/*
 * megatron.c: Megatron-LM checkpoints in the legacy layout, opened as one
 * checkpoint of full tensors.
 *
 * A folder holding `latest_checkpointed_iteration.txt` (an iteration or
 * "release"), or a single `iter_NNNNNNN` / `release` folder, or that folder
 * itself, with `mp_rank_TT[_PPP][_EEE]/model_optim_rng.pt` for the ranks of
 * one data replica: TT the tensor-parallel rank, PPP the pipeline stage
 * when pipeline-parallel, EEE the expert rank when expert-parallel.  Each
 * file is a torch.save of `args`, `iteration`, `model` and the optimizer
 * and RNG state; only `model` becomes tensors.  The layout comes from the
 * checkpoint's own args (megatron_layout.c, megatron_args.c), which every
 * rank must agree on, never from the names, which cannot tell a stage from
 * an expert rank.
 *
 * Merging declares pieces, never copies: column-parallel weights
 * (megatron_merge.c) are the ranks' parts stacked on dim 0 (SwiGLU fc1 as
 * all gate halves then all up halves), row-parallel weights on dim 1, and
 * every other tensor is replicated: checked byte-equal across the
 * tensor-parallel ranks and exposed once.  Routed experts
 * (megatron_experts.c) join over the expert-TP ranks under their global
 * index.  Layer numbers, local to each pipeline stage, become global by
 * adding the stage's first layer.  An iteration folder holding a torch_dist
 * checkpoint instead goes to that reader.
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

/* Rank 0's folder under each naming: tensor-parallel only, with a stage or an expert rank, with both. */
static const char *const rank0_names[] = {"mp_rank_00", "mp_rank_00_000", "mp_rank_00_000_000"};

/* Which of rank0_names `dir` holds rank 0's file under, or -1. */
static int rank0_naming(const struct ckpt_fs *fs, const char *dir)
{
    char path[4096];
    for (int i = 0; i < 3; i++)
        if (snprintf(path, sizeof path, "%s/%s", dir, rank0_names[i]) < (int)sizeof path &&
            format_dir_has(fs, path, RANK_FILE))
            return i;
    return -1;
}

static bool holds_ranks(const struct ckpt_fs *fs, const char *dir)
{
    return rank0_naming(fs, dir) >= 0;
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

/* iter/mp_rank_TT[_PPP][_EEE]/model_optim_rng.pt, as Megatron names it: a stage when pipeline-parallel, an
 * expert rank when expert-parallel. */
static char *rank_path(const char *iter, const struct megatron_layout *lay, long tp, long pp, long ep)
{
    char name[128];
    int n = snprintf(name, sizeof name, "mp_rank_%02ld", tp);
    if (lay->pp > 1)
        n += snprintf(name + n, sizeof name - (size_t)n, "_%03ld", pp);
    if (lay->ep > 1)
        n += snprintf(name + n, sizeof name - (size_t)n, "_%03ld", ep);
    snprintf(name + n, sizeof name - (size_t)n, "/%s", RANK_FILE);
    return path_join(iter, name);
}

static int load_rank(const struct ckpt_source *src, const char *path, struct ckpt_source **out, ckpt_error *err)
{
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

/* The args every rank must agree on. */
static const char *const shape_args[] = {
    "args.num_layers", "args.hidden_size", "args.ffn_hidden_size", "args.num_attention_heads",
    "args.num_query_groups", "args.group_query_attention", "args.kv_channels", "args.swiglu",
    "args.padded_vocab_size", "args.tensor_model_parallel_size", "args.pipeline_model_parallel_size",
    "args.virtual_pipeline_model_parallel_size", "args.decoder_first_pipeline_num_layers",
    "args.decoder_last_pipeline_num_layers", "args.expert_model_parallel_size",
    "args.expert_tensor_parallel_size", "args.num_experts", "args.moe_ffn_hidden_size", "args.moe_grouped_gemm",
    "args.moe_use_legacy_grouped_gemm", "args.multi_latent_attention", "args.q_lora_rank", "args.kv_lora_rank",
    "args.mtp_num_layers", "checkpoint_version",
};

static const ckpt_object *object(const struct ckpt_source *s, const char *name)
{
    for (size_t i = 0; i < s->object_count; i++)
        if (strcmp(s->objects[i].name, name) == 0)
            return &s->objects[i];
    return NULL;
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

/* The naming rank 0's file was found under must be the one the args give. */
static int check_naming(const struct megatron_layout *lay, int naming, const char *path, ckpt_error *err)
{
    int want = (lay->pp > 1) + (lay->ep > 1);
    if (naming == want)
        return CKPT_OK;
    return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args give pipeline size %ld and expert-parallel size %ld, the folder "
                     "name says otherwise", path, lay->pp, lay->ep);
}

/*
 * Every file of the grid that exists is loaded and must agree with rank 0.
 * Without expert parallelism each one must exist; with it, some pairs are
 * written by no rank, and megatron_layout_check_complete decides.
 */
static int load_grid(struct ckpt_source *src, struct megatron_layout *lay, const char *iter, ckpt_error *err)
{
    const struct ckpt_source *first = lay->ranks[0].src;
    int rc = CKPT_OK;
    for (size_t i = 1; i < lay->grid * (size_t)lay->pp && !rc; i++) {
        struct megatron_rank *r = &lay->ranks[i];
        char *path = rank_path(iter, lay, r->tp, (long)(i / lay->grid), r->ep);
        if (!path)
            rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", iter);
        else if (!fs_is_file(src->fs, path) && lay->ep == 1)
            rc = ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: missing: the checkpoint's args ask for this rank file", path);
        else if (fs_is_file(src->fs, path) && !(rc = load_rank(src, path, &r->src, err)))
            rc = check_agree(first, r->src, err);
        free(path);
    }
    return rc ? rc : megatron_layout_check_complete(lay, iter, err);
}

static int open_ranks(struct ckpt_source *src, const char *iter, ckpt_error *err)
{
    struct megatron_layout lay = {0};
    struct ckpt_source *first = NULL;
    int naming = rank0_naming(src->fs, iter);
    char *dir = naming >= 0 ? path_join(iter, rank0_names[naming]) : NULL;
    char *path = dir ? path_join(dir, RANK_FILE) : NULL;
    int rc = naming < 0 ? ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no mp_rank_00*/%s", iter, RANK_FILE)
             : path    ? load_rank(src, path, &first, err)
                       : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", iter);
    if (!rc)
        rc = megatron_layout_read(&lay, first, path, err);
    if (!rc)
        rc = check_naming(&lay, naming, path, err);
    if (!rc)
        rc = check_agree(first, first, err);
    if (!rc) {
        lay.ranks[0].src = first;   /* the grid's first pair is (tp 0, ep 0) of stage 0 */
        first = NULL;
        rc = load_grid(src, &lay, iter, err);
    }
    if (!rc)
        rc = record_args(src, lay.ranks[0].src, err);
    if (!rc)
        rc = megatron_merge(src, &lay, err);
    ckpt_source_free(first);
    megatron_layout_free(&lay);
    free(path);
    free(dir);
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
