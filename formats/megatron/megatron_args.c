/*
 * megatron_args.c: Megatron-LM's `args` as megatron.* source metadata; see
 * megatron_args.h.  The values come from the objects the torch reader
 * flattened (`args.hidden_size` = "4096", kind "int"), so nothing here
 * touches a pickle.
 */
#include "megatron_args.h"

#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The objects an args namespace was flattened into, under a prefix ("0." inside torch_dist's common_state). */
struct args {
    const struct ckpt_source *from;
    const char *prefix;
};

static const ckpt_object *find_any(const struct args *a, const char *name)
{
    size_t n = strlen(a->prefix);
    for (size_t i = 0; i < a->from->object_count; i++) {
        const char *o = a->from->objects[i].name;
        if (strncmp(o, a->prefix, n) == 0 && strcmp(o + n, name) == 0)
            return &a->from->objects[i];
    }
    return NULL;
}

static const ckpt_object *find(const struct args *a, const char *name, const char *kind)
{
    const ckpt_object *o = find_any(a, name);
    return o && strcmp(o->kind, kind) == 0 ? o : NULL;
}

static bool get_int(const struct args *a, const char *name, long long *out)
{
    const ckpt_object *o = find(a, name, "int");
    char *end;
    if (!o)
        return false;
    *out = strtoll(o->value, &end, 10);
    return *end == '\0';
}

static bool get_flag(const struct args *a, const char *name)
{
    const ckpt_object *o = find(a, name, "bool");
    return o && strcmp(o->value, "True") == 0;
}

/* An int arg as it is, a float one as the shortest decimal text that reads back to the same double. */
static bool get_real(const struct args *a, const char *name, char *out, size_t cap)
{
    const ckpt_object *o = find(a, name, "int");
    if (o) {
        snprintf(out, cap, "%s", o->value);
        return true;
    }
    if (!(o = find(a, name, "float")))
        return false;
    double v = strtod(o->value, NULL);
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, cap, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return true;
}

static int put(struct ckpt_source *src, const char *key, long long value, const char *file, ckpt_error *err)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    return source_add_metadata(src, key, text, file, err);
}

/* The keys that are recorded when their arg is present. */
static int record_optional(struct ckpt_source *src, const struct args *a, const char *file, ckpt_error *err)
{
    static const struct {
        const char *arg, *key;
    } ints[] = {
        {"args.max_position_embeddings", "megatron.max_position_embeddings"},
        {"args.tensor_model_parallel_size", "megatron.tensor_model_parallel_size"},
        {"args.pipeline_model_parallel_size", "megatron.pipeline_model_parallel_size"},
        {"args.expert_model_parallel_size", "megatron.expert_model_parallel_size"},
        {"args.expert_tensor_parallel_size", "megatron.expert_tensor_parallel_size"},
        {"iteration", "megatron.iteration"},
    };
    int rc = CKPT_OK;
    long long v;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        if (get_int(a, ints[i].arg, &v))
            rc = put(src, ints[i].key, v, file, err);
    char real[64];
    if (!rc && (get_real(a, "args.norm_epsilon", real, sizeof real) ||
                get_real(a, "args.layernorm_epsilon", real, sizeof real)))
        rc = source_add_metadata(src, "megatron.norm_epsilon", real, file, err);
    if (!rc && get_real(a, "args.rotary_base", real, sizeof real))
        rc = source_add_metadata(src, "megatron.rotary_base", real, file, err);
    return rc;
}

/* moe_layer_freq as a list, flattened to args.moe_layer_freq.0 ...: one pass over the objects fills pattern. */
static int layer_list(const struct args *a, char *pattern, long long layers, const char *file, ckpt_error *err)
{
    char stem[64];
    size_t n = (size_t)snprintf(stem, sizeof stem, "%sargs.moe_layer_freq.", a->prefix);
    for (size_t i = 0; i < a->from->object_count; i++) {
        const ckpt_object *o = &a->from->objects[i];
        char *end;
        if (strncmp(o->name, stem, n) != 0)
            continue;
        long long at = strtoll(o->name + n, &end, 10);
        if (*end || at < 0 || at >= layers || strcmp(o->kind, "int") != 0 ||
            (strcmp(o->value, "0") != 0 && strcmp(o->value, "1") != 0) || pattern[at] != '?')
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: moe_layer_freq is not a list of %lld 0s and 1s", file,
                             layers);
        pattern[at] = o->value[0];
    }
    if (strchr(pattern, '?'))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: moe_layer_freq is not a list of %lld 0s and 1s", file,
                         layers);
    return CKPT_OK;
}

/*
 * The MoE, MLA, q/k-norm, MTP and RoPE-scaling args, each under its own
 * name (megatron.q_lora_rank ...), when present and not None; flags as
 * "true" or "false".  moe_layer_freq becomes megatron.moe_layers, one 0
 * (dense) or 1 (MoE) per layer: Megatron's integer N means every N-th
 * layer from layer 0, its list gives them one by one.
 */
static int record_architecture(struct ckpt_source *src, const struct args *a, long long layers, const char *file,
                               ckpt_error *err)
{
    static const char *const ints[] = {
        "num_experts", "moe_ffn_hidden_size", "moe_shared_expert_intermediate_size", "moe_router_topk",
        "moe_router_num_groups", "moe_router_group_topk", "q_lora_rank", "kv_lora_rank", "qk_head_dim",
        "qk_pos_emb_head_dim", "v_head_dim", "mtp_num_layers", "original_max_position_embeddings",
        "yarn_original_max_position_embeddings",
    };
    static const char *const reals[] = {
        "moe_router_topk_scaling_factor", "rotary_scaling_factor", "mscale", "mscale_all_dim", "beta_fast",
        "beta_slow", "yarn_beta_fast", "yarn_beta_slow",
    };
    static const char *const flags[] = {
        "multi_latent_attention", "qk_layernorm", "moe_router_enable_expert_bias", "moe_shared_expert_gate",
        "moe_router_pre_softmax", "add_qkv_bias", "add_bias_linear",
    };
    static const char *const strings[] = {"moe_router_score_function", "rope_type", "position_embedding_type"};
    char arg[96], key[96], text[64];
    long long v;
    int rc = CKPT_OK;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        if (snprintf(arg, sizeof arg, "args.%s", ints[i]) > 0 && get_int(a, arg, &v) &&
            snprintf(key, sizeof key, "megatron.%s", ints[i]) > 0)
            rc = put(src, key, v, file, err);
    for (size_t i = 0; i < sizeof reals / sizeof reals[0] && !rc; i++)
        if (snprintf(arg, sizeof arg, "args.%s", reals[i]) > 0 && get_real(a, arg, text, sizeof text) &&
            snprintf(key, sizeof key, "megatron.%s", reals[i]) > 0)
            rc = source_add_metadata(src, key, text, file, err);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0] && !rc; i++)
        if (snprintf(arg, sizeof arg, "args.%s", flags[i]) > 0 && find(a, arg, "bool") &&
            snprintf(key, sizeof key, "megatron.%s", flags[i]) > 0)
            rc = source_add_metadata(src, key, get_flag(a, arg) ? "true" : "false", file, err);
    for (size_t i = 0; i < sizeof strings / sizeof strings[0] && !rc; i++) {
        const ckpt_object *o = snprintf(arg, sizeof arg, "args.%s", strings[i]) > 0 ? find(a, arg, "string") : NULL;
        if (o && strlen(o->value) < 64 && snprintf(key, sizeof key, "megatron.%s", strings[i]) > 0)
            rc = source_add_metadata(src, key, o->value, file, err);
    }
    if (rc || (!find(a, "args.num_experts", "int") && !find(a, "args.num_moe_experts", "int")))
        return rc;
    /* which layers are MoE: an int N (every N-th, from layer 0) or a list of 0s and 1s */
    char *pattern = malloc((size_t)layers + 1);
    if (!pattern)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "%s: out of memory", file);
    long long every = 1;
    bool list = find(a, "args.moe_layer_freq.0", "int") != NULL;
    if (!list && find_any(a, "args.moe_layer_freq") && !get_int(a, "args.moe_layer_freq", &every))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: moe_layer_freq is neither an integer nor a list", file);
    if (!rc && (every < 1 || every > layers))
        rc = ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: moe_layer_freq %lld for %lld layers", file, every, layers);
    for (long long i = 0; i < layers; i++)
        pattern[i] = list ? '?' : (char)('0' + (i % every == 0));
    pattern[layers] = '\0';
    if (!rc && list)
        rc = layer_list(a, pattern, layers, file, err);
    if (!rc)
        rc = source_add_metadata(src, "megatron.moe_layers", pattern, file, err);
    free(pattern);
    return rc;
}

int megatron_args_record_under(struct ckpt_source *src, const struct ckpt_source *from, const char *prefix,
                               const char *file, ckpt_error *err)
{
    const struct args args = {from, prefix}, *a = &args;
    long long layers, hidden, heads, ffn, groups, kv, padded, vocab;
    if (!get_int(a, "args.hidden_size", &hidden))
        return CKPT_OK;   /* no Megatron args in this file */
    if (!get_int(a, "args.num_layers", &layers) || !get_int(a, "args.num_attention_heads", &heads) ||
        layers <= 0 || hidden <= 0 || heads <= 0 || layers > (1 << 24))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args lack a positive num_layers, hidden_size or num_attention_heads",
                         file);
    if (!get_int(a, "args.ffn_hidden_size", &ffn))
        ffn = 4 * hidden;   /* Megatron's default */
    groups = heads;
    if (get_flag(a, "args.group_query_attention") && !get_int(a, "args.num_query_groups", &groups))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args ask for grouped-query attention without num_query_groups", file);
    if (groups <= 0 || heads % groups)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: %lld query groups do not divide %lld heads", file, groups,
                         heads);
    if (!get_int(a, "args.kv_channels", &kv)) {
        if (hidden % heads)
            return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: args: %lld heads do not divide hidden size %lld", file, heads,
                             hidden);
        kv = hidden / heads;
    }
    padded = vocab = 0;
    bool has_padded = get_int(a, "args.padded_vocab_size", &padded);
    bool has_vocab = get_int(a, "args.vocab_size", &vocab);
    if (!has_vocab)
        vocab = padded;   /* the contract: the padded size when args lack the true one */
    if (!has_padded)
        padded = vocab;
    const struct {
        const char *key;
        long long value;
        bool present;
    } keys[] = {
        {"megatron.num_layers", layers, true},
        {"megatron.hidden_size", hidden, true},
        {"megatron.ffn_hidden_size", ffn, true},
        {"megatron.num_attention_heads", heads, true},
        {"megatron.num_query_groups", groups, true},
        {"megatron.kv_channels", kv, true},
        {"megatron.heads_per_group", heads / groups, true},
        {"megatron.padded_vocab_size", padded, has_padded || has_vocab},
        {"megatron.vocab_size", vocab, has_padded || has_vocab},
    };
    int rc = CKPT_OK;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !rc; i++)
        if (keys[i].present)
            rc = put(src, keys[i].key, keys[i].value, file, err);
    if (!rc)
        rc = source_add_metadata(src, "megatron.swiglu", get_flag(a, "args.swiglu") ? "true" : "false", file, err);
    if (!rc)
        rc = record_optional(src, a, file, err);
    return rc ? rc : record_architecture(src, a, layers, file, err);
}

int megatron_args_record(struct ckpt_source *src, const struct ckpt_source *from, const char *file, ckpt_error *err)
{
    return megatron_args_record_under(src, from, "", file, err);
}
