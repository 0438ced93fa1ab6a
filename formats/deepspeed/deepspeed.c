/*
 * deepspeed.c: DeepSpeed ZeRO checkpoint folders.
 *
 * A folder holding `latest` (the tag, e.g. global_step100) and the tag's
 * folder, or the tag's folder itself: `mp_rank_00_model_states.pt` (ZeRO
 * 1/2) or `zero_pp_rank_D_mp_rank_00_model_states.pt` (ZeRO-3, one per
 * data-parallel rank), and `[bf16_|fp16_]zero_pp_rank_D_mp_rank_00_optim_states.pt`
 * per rank.  By default the tensors are the full fp32 weights rebuilt from
 * the optimizer partitions (deepspeed_zero.c); with the `module` choice, the
 * 16-bit module weights of the model states (ZeRO 1/2 only: ZeRO-3 module
 * weights are empty placeholders).  An MoE checkpoint adds one
 * layer_L_expert_E_mp_rank_00_model_states.pt per routed expert
 * (deepspeed_moe.c): the experts are their 16-bit weights, even with the
 * fp32 weights, since no fp32 partition of an expert group can be placed
 * (see moe_fp32).
 * Tensor-parallel folders (mp_rank_01...) are refused.
 */
#include "deepspeed.h"

#include "formats/common/format.h"
#include "formats/common/shard_index.h"
#include "libckpt/common/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_SUFFIX "_model_states.pt"
#define OPTIM_SUFFIX "_optim_states.pt"
#define ZERO2_MODEL "mp_rank_00_model_states.pt"
#define ZERO3_MODEL "zero_pp_rank_0_mp_rank_00_model_states.pt"
#define MAX_TAG 255
#define MAX_WORLD 65536

static bool ds_probe(const struct format_probe *p)
{
    return p->is_dir && (format_dir_has(p->fs, p->path, "latest") || format_dir_has(p->fs, p->path, ZERO2_MODEL) ||
                         format_dir_has(p->fs, p->path, ZERO3_MODEL));
}

/* The tag folder: `dir/<latest>` when dir has `latest`, else dir itself (malloc'd). */
static int tag_folder(const struct ckpt_fs *fs, const char *dir, char **out, ckpt_error *err)
{
    if (!format_dir_has(fs, dir, "latest")) {
        if (!(*out = strdup(dir)))
            return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
        for (size_t n = strlen(*out); n > 1 && (*out)[n - 1] == '/'; n--)
            (*out)[n - 1] = '\0';   /* "global_step7/" names the tag global_step7 */
        return CKPT_OK;
    }
    char *path = path_join(dir, "latest");
    if (!path)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    char tag[MAX_TAG + 1] = "";
    int rc = read_tag_file(fs, path, tag, sizeof tag, "a tag", err);
    size_t n = strlen(tag);
    if (!rc && (n == 0 || strchr(tag, '/') || strcmp(tag, ".") == 0 ||
                strcmp(tag, "..") == 0))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: '%s' is not a checkpoint tag", path, tag);
    if (!rc)
        rc = named_folder(fs, dir, tag, path, out, err);
    free(path);
    return rc;
}

/*
 * Parses "[bf16_|fp16_]zero_pp_rank_D_mp_rank_TT<suffix>" into the
 * data-parallel rank D; refuses a tensor-parallel rank TT other than 00.
 */
static int rank_of(const char *path, const char *suffix, long *rank, ckpt_error *err)
{
    const char *slash = strrchr(path, '/'), *s = slash ? slash + 1 : path;
    if (strncmp(s, "bf16_", 5) == 0 || strncmp(s, "fp16_", 5) == 0)
        s += 5;
    long mp = -1;
    char *end, *mp_end;
    if (strncmp(s, "zero_pp_rank_", 13) == 0 && isdigit((unsigned char)s[13])) {
        *rank = strtol(s + 13, &end, 10);
        if (strncmp(end, "_mp_rank_", 9) == 0 && isdigit((unsigned char)end[9])) {
            mp = strtol(end + 9, &mp_end, 10);
            if (strcmp(mp_end, suffix) != 0)
                mp = -1;
        }
    }
    if (mp < 0 || *rank < 0 || *rank >= MAX_WORLD)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: not named as a ZeRO rank's file", path);
    if (mp != 0)
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED,
                         "%s: a tensor-parallel DeepSpeed checkpoint (model-parallel rank %ld): not read", path, mp);
    return CKPT_OK;
}

/*
 * Refuses model states of a model-parallel rank other than 0
 * (mp_rank_01_model_states.pt, ...) and moves the MoE expert files out of
 * paths into *experts.
 */
static int check_model_names(char **paths, size_t *count, char ***experts, size_t *expert_count, ckpt_error *err)
{
    if (!(*experts = calloc(*count + 1, sizeof **experts)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    size_t kept = 0;
    int rc = CKPT_OK;
    for (size_t i = 0; i < *count; i++) {
        const char *slash = strrchr(paths[i], '/'), *s = slash ? slash + 1 : paths[i];
        long r, layer, expert;
        if (rc) {
            paths[kept++] = paths[i];   /* kept to be freed */
        } else if (ds_expert_file(s, &layer, &expert, &r)) {
            (*experts)[(*expert_count)++] = paths[i];
            if (r != 0)
                rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: a tensor-parallel DeepSpeed MoE checkpoint "
                               "(model-parallel rank %ld): not read", paths[i], r);
        } else {
            paths[kept++] = paths[i];
            rc = strncmp(s, "mp_rank_", 8) == 0 ? (strcmp(s, ZERO2_MODEL) == 0 ? CKPT_OK
                                                   : ckpt_fail(err, CKPT_ERR_UNSUPPORTED,
                                                               "%s: a tensor-parallel DeepSpeed checkpoint: not read",
                                                               paths[i]))
                                                : rank_of(paths[i], MODEL_SUFFIX, &r, err);
        }
    }
    *count = kept;
    return rc;
}

/*
 * The rank files with `suffix`, ordered by rank into *ordered (world
 * entries); a missing rank is refused naming the file expected.
 */
static int rank_files(const char *dir, const char *suffix, const char *const *paths, size_t count, size_t world,
                      const char ***ordered, ckpt_error *err)
{
    if (count > world) {
        for (size_t i = 0; i < count; i++) {
            long r;
            int rc = rank_of(paths[i], suffix, &r, err);
            if (rc || (size_t)r >= world)
                return rc ? rc : ckpt_fail(err, CKPT_ERR_FORMAT, "%s: rank %ld of a data-parallel size of %zu",
                                           paths[i], r, world);
        }
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %zu *%s files for a data-parallel size of %zu", dir, count, suffix,
                         world);
    }
    if (!(*ordered = calloc(world, sizeof **ordered)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", dir);
    for (size_t i = 0; i < count; i++) {
        long r;
        int rc = rank_of(paths[i], suffix, &r, err);
        if (!rc && (size_t)r >= world)
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: rank %ld of a data-parallel size of %zu", paths[i], r, world);
        if (!rc && (*ordered)[r])
            rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: rank %ld has another file, %s", paths[i], r, (*ordered)[r]);
        if (rc)
            return rc;
        (*ordered)[r] = paths[i];
    }
    for (size_t r = 0; r < world; r++) {
        if (!(*ordered)[r]) {
            /* name the missing file as its siblings are named */
            const char *sib = strrchr(paths[0], '/') ? strrchr(paths[0], '/') + 1 : paths[0];
            const char *prefix = strncmp(sib, "bf16_", 5) == 0 ? "bf16_" : strncmp(sib, "fp16_", 5) == 0 ? "fp16_" : "";
            return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s/%szero_pp_rank_%zu_mp_rank_00%s: missing (data-parallel size %zu)",
                             dir, prefix, r, suffix, world);
        }
    }
    return CKPT_OK;
}

struct folder {
    char *dir;
    char **optim_paths, **model_paths, **expert_paths;
    size_t optim_count, model_count, expert_count;
    const char **optim_by_rank, **model_by_rank;
    struct ds_model *models;
    size_t models_loaded;
    struct ds_optim *optims;
    size_t optims_loaded;
};

static void folder_free(struct folder *f)
{
    for (size_t i = 0; i < f->models_loaded; i++)
        ds_model_free(&f->models[i]);
    for (size_t i = 0; i < f->optims_loaded; i++)
        ds_optim_free(&f->optims[i]);
    free(f->models);
    free(f->optims);
    free(f->optim_by_rank);
    free(f->model_by_rank);
    path_list_free(f->optim_paths, f->optim_count);
    path_list_free(f->model_paths, f->model_count);
    path_list_free(f->expert_paths, f->expert_count);
    free(f->dir);
}

/* Module weights (ZeRO 1/2): the model states' module state dict, ties kept as aliases. */
static int module_weights(struct ckpt_source *src, const struct ds_model *m, ckpt_error *err)
{
    size_t n = m->file.scratch->tensor_count;
    size_t *declared = calloc(n + 1, sizeof *declared);   /* scratch tensor -> src index + 1 */
    int rc = declared ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", m->file.path);
    for (size_t i = 0; i < m->module_count && !rc; i++) {
        size_t t = m->module_tensors[i];
        if (declared[t])
            rc = source_add_alias(src, m->module_names[i], declared[t] - 1, err);
        else if (!(rc = ds_declare(src, &m->file, t, m->module_names[i], err)))
            declared[t] = src->tensor_count;
    }
    free(declared);
    return rc;
}

static int load_models(struct ckpt_source *src, struct folder *f, size_t count, const char *const *paths,
                       ckpt_error *err)
{
    if (!(f->models = calloc(count, sizeof *f->models)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->dir);
    for (size_t i = 0; i < count; i++) {
        f->models_loaded++;
        int rc = ds_model_load(src, paths[i], &f->models[i], err);
        if (rc)
            return rc;
    }
    return CKPT_OK;
}

/* The fp32 weights: every optimizer rank file, checked against the others and the model states. */
static int fp32_weights(struct ckpt_source *src, struct folder *f, const char *zero2_model, ckpt_error *err)
{
    int rc = dir_list_suffix(src->fs, f->dir, OPTIM_SUFFIX, &f->optim_paths, &f->optim_count, err);
    if (rc)
        return rc;
    if (f->optim_count == 0)
        return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no *%s files: the optimizer states are needed to rebuild "
                                                  "the fp32 weights%s", f->dir, OPTIM_SUFFIX,
                         zero2_model ? " (or choose the module weights)" : "");
    if (!(f->optims = calloc(f->optim_count, sizeof *f->optims)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f->dir);
    /* rank 0's file says the data-parallel size; every file is then checked against it */
    size_t first = 0;
    for (size_t i = 0; i < f->optim_count; i++) {
        long r = -1;
        if ((rc = rank_of(f->optim_paths[i], OPTIM_SUFFIX, &r, err)))
            return rc;
        if (r == 0)
            first = i;
    }
    f->optims_loaded = 1;
    if ((rc = ds_optim_load(src, f->optim_paths[first], &f->optims[0], err)))
        return rc;
    const struct ds_optim *o0 = &f->optims[0];
    if (o0->world > MAX_WORLD)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: partition_count %lld is not a data-parallel size",
                         o0->file.path, (long long)o0->world);
    size_t world = (size_t)o0->world;
    if ((rc = rank_files(f->dir, OPTIM_SUFFIX, (const char *const *)f->optim_paths, f->optim_count, world,
                         &f->optim_by_rank, err)))
        return rc;
    if (strcmp(f->optim_by_rank[0], o0->file.path) != 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: two files claim rank 0", f->dir);
    for (size_t r = 1; r < world; r++) {
        struct ds_optim *o = &f->optims[r];
        f->optims_loaded++;
        if ((rc = ds_optim_load(src, f->optim_by_rank[r], o, err)))
            return rc;
        if (o->world != o0->world)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: partition_count %lld, but rank 0's is %lld", o->file.path,
                             (long long)o->world, (long long)o0->world);
        if (o->stage != o0->stage)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: ZeRO stage %lld, but rank 0's is %lld", o->file.path,
                             (long long)o->stage, (long long)o0->stage);
    }
    bool zero3 = !zero2_model;
    if ((o0->stage == 3) != zero3)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: ZeRO stage %lld, but the model states are named for stage %s",
                         o0->file.path, (long long)o0->stage, zero3 ? "3" : "1/2");
    size_t model_count = 1;
    const char *const *models = &zero2_model;
    if (zero3) {
        if ((rc = rank_files(f->dir, MODEL_SUFFIX, (const char *const *)f->model_paths, f->model_count, world,
                             &f->model_by_rank, err)))
            return rc;
        models = f->model_by_rank;
        model_count = world;
    }
    if ((rc = load_models(src, f, model_count, models, err)))
        return rc;
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)o0->stage);
    rc = source_add_metadata(src, "deepspeed.zero_stage", text, o0->file.path, err);
    snprintf(text, sizeof text, "%zu", world);
    if (!rc)
        rc = source_add_metadata(src, "deepspeed.data_parallel_size", text, o0->file.path, err);
    return rc ? rc : ds_zero_declare(src, o0->stage, f->models, model_count, f->optims, world, err);
}

/*
 * fp32 weights of an MoE checkpoint: the dense groups are rebuilt from the
 * ZeRO partitions as ever; the expert groups cannot be (deepspeed_zero.c,
 * expert_group: DeepSpeed's zero_to_fp32.py cannot either, DeepSpeed issue
 * #4497), so the routed experts are the 16-bit weights of the expert files,
 * which deepspeed.expert_weights says.
 */
static int moe_fp32(struct ckpt_source *src, struct folder *f, ckpt_error *err)
{
    int rc = ds_moe_declare(src, f->dir, f->expert_paths, f->expert_count, &f->models[0], err);
    return rc ? rc : source_add_metadata(src, "deepspeed.expert_weights", "module (16-bit): ZeRO partitions of "
                                         "expert groups cannot be placed, so their fp32 is not rebuilt", f->dir, err);
}

static int ds_open(struct ckpt_source *src, const char *path, ckpt_error *err)
{
    struct folder f = {0};
    int rc = tag_folder(src->fs, path, &f.dir, err);
    if (!rc)
        rc = dir_list_suffix(src->fs, f.dir, MODEL_SUFFIX, &f.model_paths, &f.model_count, err);
    if (!rc)
        rc = check_model_names(f.model_paths, &f.model_count, &f.expert_paths, &f.expert_count, err);
    bool zero3 = !rc && format_dir_has(src->fs, f.dir, ZERO3_MODEL);
    if (!rc && !zero3 && !format_dir_has(src->fs, f.dir, ZERO2_MODEL))
        rc = ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: neither %s nor %s: not a DeepSpeed checkpoint", f.dir,
                       ZERO2_MODEL, ZERO3_MODEL);
    if (!rc && zero3 && src->deepspeed_weights == CKPT_DEEPSPEED_MODULE)
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED,
                       "%s: ZeRO-3 model states hold placeholders, not module weights: use the fp32 weights", f.dir);
    char *model = rc || zero3 ? NULL : path_join(f.dir, ZERO2_MODEL);
    if (!rc && !zero3 && !model)
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", f.dir);
    const char *slash = f.dir ? strrchr(f.dir, '/') : NULL;
    if (!rc)
        rc = source_add_metadata(src, "deepspeed.tag", slash ? slash + 1 : f.dir, f.dir, err);
    if (!rc)
        rc = source_add_metadata(src, "deepspeed.weights",
                                 src->deepspeed_weights == CKPT_DEEPSPEED_MODULE ? "module" : "fp32", f.dir, err);
    if (!rc && src->deepspeed_weights == CKPT_DEEPSPEED_MODULE) {
        rc = load_models(src, &f, 1, (const char *const *)&model, err);
        if (!rc)
            rc = module_weights(src, &f.models[0], err);
        if (!rc && f.expert_count)
            rc = ds_moe_declare(src, f.dir, f.expert_paths, f.expert_count, &f.models[0], err);
    } else if (!rc) {
        if (f.expert_count && zero3)   /* DeepSpeed refuses native MoE with ZeRO-3 (engine.py:1889-1893) */
            rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: MoE expert files beside ZeRO-3 model states: DeepSpeed "
                           "itself refuses native MoE with ZeRO stage 3", f.dir);
        if (!rc)
            rc = fp32_weights(src, &f, model, err);
        if (!rc && f.expert_count)
            rc = moe_fp32(src, &f, err);
    }
    free(model);
    folder_free(&f);
    return rc;
}

const struct format_reader format_deepspeed = {"deepspeed", ds_probe, ds_open};
