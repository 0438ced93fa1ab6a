/*
 * megatron_layout.c: a legacy Megatron-LM checkpoint's parallel layout,
 * read from its args; see megatron.h.
 *
 * The file name mp_rank_TT[_PPP][_EEE] carries the dense tensor-parallel
 * rank, the stage only when pipeline-parallel and the expert rank only when
 * expert-parallel (Megatron's get_checkpoint_name), so `mp_rank_00_001` is
 * stage 1 or expert rank 1: only the args can tell.  Within a stage, global
 * rank r holds tensor-parallel rank r % TP, expert-TP rank r % ETP and
 * expert rank (r / ETP) % EP (parallel_state.py's "tp-cp-ep-dp-pp" order);
 * a file is one (tp, ep) pair, so every pair must come with one expert-TP
 * rank, else the legacy format cannot hold the layout at all.  With ETP
 * different from TP the grid is sparse: TP=4, ETP=1, EP=8 gives 8 files,
 * each dense shard twice.  Stage layer counts follow Megatron's
 * get_transformer_layer_offset: even, or a given first and last stage with
 * the rest even, or even once the embedding and the loss count as layers.
 */
#include "megatron.h"

#include "libckpt/common/checked.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ckpt_object *arg(const struct ckpt_source *s, const char *name)
{
    for (size_t i = 0; i < s->object_count; i++)
        if (strcmp(s->objects[i].name, name) == 0)
            return &s->objects[i];
    return NULL;
}

/* An int arg, or `fallback` when it is absent or None; false when it is something else. */
static bool arg_long(const struct ckpt_source *s, const char *name, long fallback, long *out)
{
    const ckpt_object *o = arg(s, name);
    *out = fallback;
    if (!o || strcmp(o->kind, "none") == 0)
        return true;
    char *end;
    if (strcmp(o->kind, "int") != 0)
        return false;
    *out = strtol(o->value, &end, 10);
    return *end == '\0';
}

static bool arg_true(const struct ckpt_source *s, const char *name)
{
    const ckpt_object *o = arg(s, name);
    return o && strcmp(o->kind, "bool") == 0 && strcmp(o->value, "True") == 0;
}

/* Set to something other than None, False, or (for sizes) 1. */
static bool arg_set(const struct ckpt_source *s, const char *name)
{
    const ckpt_object *o = arg(s, name);
    long v;
    if (!o || strcmp(o->kind, "none") == 0 || (strcmp(o->kind, "bool") == 0 && strcmp(o->value, "False") == 0))
        return false;
    return !(arg_long(s, name, 0, &v) && v <= 1);
}

static long gcd(long a, long b)
{
    while (b) {
        long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Layouts this reader does not merge, each with the reason a user can act on. */
static int refuse_features(const struct ckpt_source *s, const char *path, ckpt_error *err)
{
    static const struct {
        const char *arg, *why;
    } refused[] = {
        {"args.virtual_pipeline_model_parallel_size", "virtual pipeline stages are not supported"},
        {"args.num_layers_per_virtual_pipeline_stage", "virtual pipeline stages are not supported"},
        {"args.num_virtual_stages_per_pipeline_rank", "virtual pipeline stages are not supported"},
        {"args.pipeline_model_parallel_layout", "a pipeline layout is not supported (uneven stages: "
                                                "--decoder-first/last-pipeline-num-layers are)"},
        {"args.moe_extended_tp", "every rank holding all experts split over TP x EP (core <= 0.9) is not supported"},
        {"args.moe_mlp_glu_interleave_size", "block-interleaved gate/up rows are not supported"},
        {"args.moe_single_grouped_weight", "one grouped expert weight per linear (a TE GroupedTensor) is not "
                                           "supported"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (arg_set(s, refused[i].arg))
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: %s = %s: %s", path, refused[i].arg + 5,
                             arg(s, refused[i].arg)->value, refused[i].why);
    return CKPT_OK;
}

/* Layers per stage: Megatron's get_transformer_layer_offset, without virtual stages. */
static int stage_layers(struct megatron_layout *lay, const struct ckpt_source *s, const char *path, ckpt_error *err)
{
    long first, last, pp = lay->pp, n = lay->layers;
    if (!arg_long(s, "args.decoder_first_pipeline_num_layers", -1, &first) ||
        !arg_long(s, "args.decoder_last_pipeline_num_layers", -1, &last))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: decoder_first/last_pipeline_num_layers are not integers",
                         path);
    if (!(lay->first_layer = calloc((size_t)pp + 1, sizeof *lay->first_layer)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    long count[2] = {0, 0}, per = n, even_stages = pp;   /* the first and last stage's counts, the others' */
    bool uneven = pp > 1 && (first >= 0 || last >= 0);
    bool embedding = pp > 1 && !uneven && arg_true(s, "args.account_for_embedding_in_pipeline_split");
    bool loss = pp > 1 && !uneven && arg_true(s, "args.account_for_loss_in_pipeline_split");
    if (uneven) {
        even_stages -= (first >= 0) + (last >= 0);
        long rest = n - (first >= 0 ? first : 0) - (last >= 0 ? last : 0);
        if (rest < 0 || (even_stages == 0 ? rest != 0 : rest % even_stages != 0))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: %ld layers do not fit %ld pipeline stages with "
                             "decoder_first_pipeline_num_layers %ld and decoder_last_pipeline_num_layers %ld "
                             "(-1: not set)", path, n, pp, first, last);
        per = even_stages ? rest / even_stages : 0;
        count[0] = first >= 0 ? first : per;
        count[1] = last >= 0 ? last : per;
    } else if (pp > 1) {
        long all = n + embedding + loss;
        if (all % pp || all / pp < 1)
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: %ld layers do not split evenly over %ld pipeline stages",
                             path, n, pp);
        per = all / pp;
        count[0] = per - embedding;
        count[1] = per - loss;
    }
    for (long p = 0; p < pp; p++) {
        long c = p == 0 && pp > 1 ? count[0] : p == pp - 1 && pp > 1 ? count[1] : per;
        lay->first_layer[p + 1] = lay->first_layer[p] + c;
    }
    return CKPT_OK;
}

/* Every (tp, ep) pair the ranks of one data replica hold, with its expert-TP rank, sorted by (ep, tp). */
static int rank_grid(struct megatron_layout *lay, const char *path, ckpt_error *err)
{
    long span = lay->etp * lay->ep, ranks = span / gcd(span, lay->tp) * lay->tp;   /* lcm(TP, ETP * EP) */
    if (ranks > MEGATRON_MAX_RANKS)
        return ckpt_fail(err, CKPT_ERR_LIMIT, "%s: args: TP %ld, ETP %ld, EP %ld make %ld ranks per stage", path,
                         lay->tp, lay->etp, lay->ep, ranks);
    long *etp_of = malloc((size_t)(lay->tp * lay->ep) * sizeof *etp_of);
    if (!etp_of)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (long i = 0; i < lay->tp * lay->ep; i++)
        etp_of[i] = -1;
    int rc = CKPT_OK;
    size_t pairs = 0;
    for (long r = 0; r < ranks && !rc; r++) {
        long *slot = &etp_of[((r / lay->etp) % lay->ep) * lay->tp + r % lay->tp];
        if (*slot >= 0 && *slot != r % lay->etp)
            rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: args: TP %ld with ETP %ld and EP %ld put two expert-TP "
                           "shards behind one file name: Megatron's legacy format cannot hold this layout", path,
                           lay->tp, lay->etp, lay->ep);
        pairs += *slot < 0;
        *slot = r % lay->etp;
    }
    lay->grid = pairs;
    if (!rc && pairs * (size_t)lay->pp > MEGATRON_MAX_FILES)
        rc = ckpt_fail(err, CKPT_ERR_LIMIT, "%s: args: %zu rank files per stage over %ld stages, more than %d", path,
                       pairs, lay->pp, MEGATRON_MAX_FILES);
    if (!rc && !(lay->ranks = calloc(pairs * (size_t)lay->pp, sizeof *lay->ranks)))
        rc = ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", path);
    for (long p = 0; p < lay->pp && !rc; p++) {
        size_t n = 0;
        for (long e = 0; e < lay->ep; e++)
            for (long t = 0; t < lay->tp; t++)
                if (etp_of[e * lay->tp + t] >= 0)
                    lay->ranks[(size_t)p * pairs + n++] = (struct megatron_rank){t, e, etp_of[e * lay->tp + t], NULL};
    }
    free(etp_of);
    return rc;
}

int megatron_layout_read(struct megatron_layout *lay, const struct ckpt_source *s, const char *path, ckpt_error *err)
{
    memset(lay, 0, sizeof *lay);
    if (!arg_long(s, "args.tensor_model_parallel_size", 0, &lay->tp) ||
        !arg_long(s, "args.pipeline_model_parallel_size", 0, &lay->pp) ||
        !arg_long(s, "args.num_layers", 0, &lay->layers) || !lay->tp || !lay->pp || !lay->layers)
        return ckpt_fail(err, CKPT_ERR_FORMAT,
                         "%s: args lack tensor_model_parallel_size, pipeline_model_parallel_size or num_layers", path);
    if (!arg_long(s, "args.expert_model_parallel_size", 1, &lay->ep) ||
        !arg_long(s, "args.expert_tensor_parallel_size", lay->tp, &lay->etp) ||
        !arg_long(s, "args.num_experts", 0, &lay->experts))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: expert sizes are not integers", path);
    if (lay->tp < 1 || lay->pp < 1 || lay->ep < 1 || lay->etp < 1 || lay->layers < 1 || lay->experts < 0 ||
        lay->tp > MEGATRON_MAX_RANKS || lay->pp > MEGATRON_MAX_RANKS || lay->ep > MEGATRON_MAX_RANKS ||
        lay->etp > MEGATRON_MAX_RANKS || lay->layers > (1L << 24) || lay->experts > (1L << 24))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: tensor-parallel size %ld, pipeline size %ld, expert sizes "
                         "%ld x %ld, %ld layers, %ld experts", path, lay->tp, lay->pp, lay->ep, lay->etp, lay->layers,
                         lay->experts);
    if (lay->experts % lay->ep)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: %ld experts do not split over %ld expert-parallel ranks",
                         path, lay->experts, lay->ep);
    if (!lay->experts)
        lay->etp = lay->tp;   /* without experts, the expert-TP size means nothing */
    lay->swiglu = arg_true(s, "args.swiglu");
    if (arg_true(s, "args.multi_latent_attention")) {
        long q, kv, rope;
        if (!arg_long(s, "args.q_lora_rank", 0, &q) || !arg_long(s, "args.kv_lora_rank", 0, &kv) ||
            !arg_long(s, "args.qk_pos_emb_head_dim", 0, &rope) || q < 0 || kv < 0 || rope < 0 || q > (1L << 30) ||
            kv > (1L << 30) || rope > (1L << 30))
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: q_lora_rank, kv_lora_rank or qk_pos_emb_head_dim is "
                             "not a size", path);
        lay->q_down_rows = q;
        lay->kv_down_rows = kv ? kv + rope : 0;
    }
    int rc = refuse_features(s, path, err);
    if (!rc)
        rc = stage_layers(lay, s, path, err);
    return rc ? rc : rank_grid(lay, path, err);
}

void megatron_layout_free(struct megatron_layout *lay)
{
    for (size_t i = 0; lay->ranks && i < lay->grid * (size_t)lay->pp; i++)
        ckpt_source_free(lay->ranks[i].src);
    free(lay->ranks);
    free(lay->first_layer);
    memset(lay, 0, sizeof *lay);
}

int megatron_layout_check_complete(const struct megatron_layout *lay, const char *iter, ckpt_error *err)
{
    for (long p = 0; p < lay->pp; p++) {
        const struct megatron_rank *r = lay->ranks + (size_t)p * lay->grid;
        for (long t = 0; t < lay->tp; t++) {
            size_t i;
            for (i = 0; i < lay->grid && !(r[i].tp == t && r[i].src); i++)
                ;
            if (i < lay->grid)
                continue;
            if (lay->tp > lay->ep * lay->etp)
                return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: no file holds tensor-parallel rank %ld (mp_rank_%02ld_*): "
                                 "Megatron-core before 0.18 did not save it when TP (%ld) > EP x ETP (%ld x %ld), "
                                 "so this checkpoint lacks part of every dense tensor", iter, t, t, lay->tp, lay->ep,
                                 lay->etp);
            return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: missing the file of tensor-parallel rank %ld, stage %ld",
                             iter, t, p);
        }
        for (long e = 0; lay->experts && e < lay->ep; e++)
            for (long k = 0; k < lay->etp; k++) {
                size_t i;
                for (i = 0; i < lay->grid && !(r[i].ep == e && r[i].etp == k && r[i].src); i++)
                    ;
                if (i == lay->grid)
                    return ckpt_fail(err, CKPT_ERR_NOT_FOUND, "%s: no file holds expert rank %ld's expert-TP shard "
                                     "%ld (stage %ld)", iter, e, k, p);
            }
    }
    return CKPT_OK;
}
