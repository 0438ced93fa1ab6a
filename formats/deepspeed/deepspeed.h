/*
 * deepspeed.h: the parts of the DeepSpeed ZeRO reader: the folder and its
 * files (deepspeed.c), what the model and optimizer states say
 * (deepspeed_states.c), and the fp32 weights rebuilt from the optimizer
 * partitions as zero_to_fp32 does (deepspeed_zero.c), and the expert files
 * of an MoE checkpoint (deepspeed_moe.c).
 */
#ifndef CKPT_DEEPSPEED_H
#define CKPT_DEEPSPEED_H

#include "formats/torch/torch.h"
#include "libckpt/catalog/source.h"

/* One torch.save file of the folder, read into a scratch source whose files `src` adopted. */
struct ds_file {
    char *path;
    struct ckpt_source *scratch; /* its catalog (views relative to its own files) */
    uint32_t base;               /* scratch file i is src file base + i */
};

/* A parameter as param_shapes, frozen_param_shapes list it. */
struct ds_param {
    char *name;
    uint32_t rank;
    uint64_t shape[SOURCE_MAX_RANK];
    uint64_t numel;
    size_t fragment;       /* frozen: its frozen_param_fragments tensor in this file, or SIZE_MAX */
};

/* What a model states file says. */
struct ds_model {
    struct ds_file file;
    struct ds_param *params;     /* param_shapes, groups one after the other */
    size_t param_count;
    size_t *group_end;           /* group g holds params [group_end[g - 1], group_end[g]) */
    size_t group_count;
    struct ds_param *frozen;
    size_t frozen_count;
    char **buffers;
    size_t buffer_count;
    char **shared;               /* pairs: a name, then the parameter it shares */
    size_t shared_count;
    char **module_names;         /* the module state dict's keys ... */
    size_t *module_tensors;      /* ... and their tensors in file.scratch */
    size_t module_count;
};

/* What an optimizer states file says. */
struct ds_optim {
    struct ds_file file;
    int64_t stage;
    int64_t world;               /* partition_count (the largest when it is a list) */
    int64_t *group_world;        /* ... and each group's, one per flat partition (NULL: all `world`) */
    size_t *flat;                /* fp32 partitions, one per group, tensors of file.scratch */
    size_t flat_count;
};

/* Loads a model states file into `m` (its files adopted by src). */
int ds_model_load(struct ckpt_source *src, const char *path, struct ds_model *m, ckpt_error *err);

/* Loads an optimizer states file into `o`. */
int ds_optim_load(struct ckpt_source *src, const char *path, struct ds_optim *o, ckpt_error *err);

/* Reads the torch.save file at `path` into f (its files adopted by src), calling `visit` on its object. */
int ds_load(struct ckpt_source *src, const char *path, struct ds_file *f, torch_visit_fn visit, void *ctx,
            ckpt_error *err);

/*
 * Parses an MoE expert file's base name, layer_L_expert_E_mp_rank_TT_model_states.pt,
 * or expert_E_mp_rank_TT_model_states.pt (DeepSpeed before 0.6, commit e46d808a; *layer = -1).
 */
bool ds_expert_file(const char *base, long *layer, long *expert, long *mp);

/*
 * Declares the routed experts of the `count` expert files at `paths` (in
 * `dir`, model-parallel rank 0) under their keys, checked against the
 * routers of the model states `m` (16-bit module weights).
 */
int ds_moe_declare(struct ckpt_source *src, const char *dir, char *const *paths, size_t count,
                   const struct ds_model *m, ckpt_error *err);

void ds_model_free(struct ds_model *m);
void ds_optim_free(struct ds_optim *o);

/* Declares scratch tensor `index` of `f` in src as `name`, its bytes where they are. */
int ds_declare(struct ckpt_source *src, const struct ds_file *f, size_t index, const char *name, ckpt_error *err);

/*
 * Declares buffers, frozen parameters, trainable parameters rebuilt from the
 * fp32 partitions of `optims` (one per data-parallel rank) and shared
 * parameters, for ZeRO stage 1/2 (models[0] only) or 3 (one model states
 * file per rank).
 */
int ds_zero_declare(struct ckpt_source *src, int64_t stage, struct ds_model *models, size_t model_count,
                    struct ds_optim *optims, size_t world, ckpt_error *err);

#endif
