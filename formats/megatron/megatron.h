/*
 * megatron.h: the parts of the Megatron-LM legacy-layout reader:
 * megatron_layout.c reads the parallel layout from the checkpoint's args
 * and names the rank files it implies, megatron.c finds and loads them,
 * megatron_merge.c joins their dense tensors and megatron_experts.c their
 * routed experts, both through megatron_join.c.
 */
#ifndef CKPT_MEGATRON_H
#define CKPT_MEGATRON_H

#include "libckpt/catalog/source.h"

/* No checkpoint has more ranks than this in one pipeline stage, or more stages, or more rank files in all. */
#define MEGATRON_MAX_RANKS 4096
#define MEGATRON_MAX_FILES 65536

/* One rank file of a pipeline stage: who wrote it, and its tensors once loaded. */
struct megatron_rank {
    long tp, ep, etp;           /* tensor-parallel, expert-parallel and expert-tensor-parallel rank */
    struct ckpt_source *src;    /* NULL when the file was not written */
};

struct megatron_layout {
    long tp, pp, ep, etp;       /* tensor, pipeline, expert and expert-tensor parallel sizes */
    long layers;                /* transformer layers in all */
    long *first_layer;          /* the first global layer of each stage, and `layers` after the last (pp + 1) */
    long experts;               /* routed experts in all, 0 without MoE */
    long q_down_rows, kv_down_rows;   /* full rows of the MLA down projections (0: no MLA) */
    bool swiglu;
    size_t grid;                /* (tp, ep) pairs a stage may have files for ... */
    struct megatron_rank *ranks;   /* ... in stage-major order, pp * grid, sorted by (ep, tp) in a stage */
};

/*
 * Reads the layout from rank 0's args (`first`, the file at `path`): the
 * sizes, the stages' layer counts (even, or uneven first and last stages),
 * and the grid of rank files: every (tp, ep) pair a rank of the first data
 * replica holds, with its expert-TP rank.  Refuses what cannot be merged
 * (virtual pipeline stages, a pipeline layout, moe_extended_tp,
 * moe_mlp_glu_interleave_size, single grouped expert weights, sizes that
 * do not fit), naming the file and the arg.
 */
int megatron_layout_read(struct megatron_layout *lay, const struct ckpt_source *first, const char *path,
                         ckpt_error *err);

void megatron_layout_free(struct megatron_layout *lay);

/*
 * Checks that the loaded files of every stage hold each dense tensor-parallel
 * shard and each expert shard at least once; a missing dense shard of a
 * checkpoint with TP > EP x ETP is reported as the Megatron < 0.18 writer bug.
 */
int megatron_layout_check_complete(const struct megatron_layout *lay, const char *iter, ckpt_error *err);

/*
 * Declares on `src` the full tensors of the model held by the layout's rank
 * files, adopting their files.  Refuses a tensor a rank lacks, shapes or
 * types that do not fit together, and replicated tensors that differ
 * between ranks, naming the files and the tensor.
 */
int megatron_merge(struct ckpt_source *src, const struct megatron_layout *lay, ckpt_error *err);

/* ---- shared by megatron_merge.c and megatron_experts.c ---- */

enum megatron_split { MEGATRON_REPLICATED, MEGATRON_COLUMN, MEGATRON_ROW, MEGATRON_GATE_UP };

#define MEGATRON_MAX_NAME 4096

/* One walk over a stage's files: checking first (base == NULL), then declaring. */
struct megatron_walk {
    struct ckpt_source *src;
    const struct megatron_layout *lay;
    const uint32_t *base;       /* NULL in the checking pass; then each rank's first adopted file */
    long stage;
    struct megatron_rank *ranks;   /* this stage's grid */
};

/* The first loaded file of this stage holding tensor-parallel rank `tp` (dense shards), or -1. */
long megatron_dense_rank(const struct megatron_walk *w, long tp);

/* The first loaded file holding expert rank `ep`'s expert-TP shard `etp`, or -1. */
long megatron_expert_rank(const struct megatron_walk *w, long ep, long etp);

/* File `file`'s entry for `name` (aliases followed), or NULL with the refusal in err. */
const struct tensor_entry *megatron_entry(const struct megatron_walk *w, long file, long first, const char *name,
                                          ckpt_error *err);

/*
 * Checks the parts (one per rank, files[k] holding parts[k]) of one tensor
 * against each other, comparing the bytes of replicated ones, in the
 * checking pass; declares the full tensor `name` in the declaring pass.
 */
int megatron_join(const struct megatron_walk *w, const char *name, const struct tensor_entry *const *parts,
                  const long *files, size_t count, enum megatron_split how, ckpt_error *err);

/* Checks part `e` of `name` against part `e0`: type, rank, and the dimensions `how` does not split. */
int megatron_check_part(const struct ckpt_source *s, const struct ckpt_source *first, const struct tensor_entry *e,
                        const struct tensor_entry *e0, enum megatron_split how, const char *name, ckpt_error *err);

/* Replicated copies must hold the same bytes: compared a block of lines at a time. */
int megatron_compare(const struct ckpt_source *a, const struct tensor_entry *ea, const struct ckpt_source *b,
                     const struct tensor_entry *eb, const char *name, ckpt_error *err);

/*
 * The global name of a rank file's tensor: `model.` dropped, a stage-local
 * decoder.layers.N made global, the MTP inner layer named transformer_layer
 * (core 0.17 calls it mtp_model_layer in legacy files).
 */
int megatron_global_name(const struct megatron_walk *w, const char *name, char *out, ckpt_error *err);

/* True when `name` is a routed expert's tensor (any of the three forms); megatron_experts.c merges those. */
bool megatron_is_expert(const char *name);

/* Checks (first pass) or declares (second pass) every routed expert of the stage. */
int megatron_merge_experts(const struct megatron_walk *w, ckpt_error *err);

/* A model weight of a rank file: under `model.`, and not Transformer Engine's `_extra_state`. */
bool megatron_is_weight(const char *name);

#endif
