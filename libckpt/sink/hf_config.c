/*
 * hf_config.c: the config.json `--rename hf` writes for a Megatron source
 * that has none, in the architecture its metadata describes
 * (libckpt/plan/hf_arch.h): Llama and Qwen2 by llama_config.c, Qwen3,
 * Qwen3-MoE and DeepSeek-V3 here.  The keys follow transformers'
 * configuration classes, the values Megatron's args as Megatron-Bridge
 * maps them (moe-layouts.md 4.3): Megatron's qk_head_dim is
 * qk_nope_head_dim, n_shared_experts is the shared width over the expert
 * width, and which layers are dense is read off the tensors written (a
 * layer without mlp.gate.weight), so that the config says what the weights
 * are.
 */
#include "hf_config.h"

#include "libckpt/common/error.h"
#include "libckpt/plan/hf_arch.h"
#include "llama_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_int_or(json_t *config, const char *name, const ckpt_source *src, const char *key, long long fallback)
{
    long long v = hf_metadata_int(src, key);
    return json_object_set_new(config, name, json_integer(v ? v : fallback));
}

static int set_real_or(json_t *config, const char *name, const ckpt_source *src, const char *key, double fallback)
{
    const char *v = ckpt_source_metadata_value(src, key);
    char *end;
    double x = v ? strtod(v, &end) : fallback;
    return json_object_set_new(config, name, json_real(v && !*end && end != v ? x : fallback));
}

/* Which decoder layers the plan gives a router (MoE) and how many MTP layers it writes, in one pass over it. */
struct layers {
    long long count;
    bool *moe;          /* count entries */
    long long mtp;      /* model.layers.{count + k}.enorm.weight written */
};

static int scan_layers(const struct ckpt_plan *plan, struct layers *l, ckpt_error *err)
{
    l->count = hf_metadata_int(plan->src, "megatron.num_layers");
    l->mtp = 0;
    if (!(l->moe = calloc((size_t)l->count + 1, sizeof *l->moe)))
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory writing config.json");
    for (size_t i = 0; i < plan->item_count; i++) {
        const char *name = plan->items[i].pub.name;
        char *end;
        if (strncmp(name, "model.layers.", 13) != 0)
            continue;
        long long n = strtoll(name + 13, &end, 10);
        if (end == name + 13 || n < 0)
            continue;
        if (n < l->count && strcmp(end, ".mlp.gate.weight") == 0)
            l->moe[n] = true;
        if (n >= l->count && strcmp(end, ".enorm.weight") == 0 && n - l->count + 1 > l->mtp)
            l->mtp = n - l->count + 1;
    }
    return CKPT_OK;
}

/* The keys every one of these architectures shares; num_key_value_heads is metadata `kv_heads_key`. */
static int common_keys(json_t *config, const struct ckpt_plan *plan, const char *kv_heads_key, bool head_dim,
                       ckpt_error *err)
{
    const ckpt_source *src = plan->src;
    static const char *const ints[][2] = {
        {"hidden_size", "megatron.hidden_size"},
        {"intermediate_size", "megatron.ffn_hidden_size"},
        {"num_attention_heads", "megatron.num_attention_heads"},
        {"num_hidden_layers", "megatron.num_layers"},
        {"vocab_size", "megatron.vocab_size"},
        {"max_position_embeddings", "megatron.max_position_embeddings"},
    };
    int rc = config_set_int(config, "num_key_value_heads", src, kv_heads_key, err);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        rc = config_set_int(config, ints[i][0], src, ints[i][1], err);
    if (!rc && head_dim)
        rc = config_set_int(config, "head_dim", src, "megatron.kv_channels", err);
    if (!rc)
        rc = config_set_real(config, "rms_norm_eps", src, "megatron.norm_epsilon", err);
    if (!rc)
        rc = config_set_real(config, "rope_theta", src, "megatron.rotary_base", err);
    if (!rc) {
        json_object_set_new(config, "hidden_act", json_string("silu"));
        json_object_set_new(config, "tie_word_embeddings", json_boolean(!config_has_output(plan, "lm_head.weight")));
    }
    return rc;
}

/* Qwen3 and Qwen3-MoE: biases, if any, on all four attention projections and nowhere else. */
static int qwen3_biases(json_t *config, const struct ckpt_plan *plan, ckpt_error *err)
{
    bool qkv = config_has_output(plan, "model.layers.0.self_attn.q_proj.bias");
    bool o = config_has_output(plan, "model.layers.0.self_attn.o_proj.bias");
    if (qkv != o || config_has_output(plan, "model.layers.0.mlp.down_proj.bias"))
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: these biases fit no Hugging Face Qwen3 model: cannot write "
                         "config.json", ckpt_source_path(plan->src));
    json_object_set_new(config, "attention_bias", json_boolean(qkv));
    return CKPT_OK;
}

static int qwen3(json_t *config, const struct ckpt_plan *plan, const struct layers *l, bool moe, ckpt_error *err)
{
    const ckpt_source *src = plan->src;
    json_object_set_new(config, "architectures", json_pack("[s]", moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"));
    json_object_set_new(config, "model_type", json_string(moe ? "qwen3_moe" : "qwen3"));
    int rc = common_keys(config, plan, "megatron.num_query_groups", true, err);
    if (!rc)
        rc = qwen3_biases(config, plan, err);
    if (rc || !moe)
        return rc;
    rc = config_set_int(config, "moe_intermediate_size", src, "megatron.moe_ffn_hidden_size", err);
    if (!rc)
        rc = config_set_int(config, "num_experts", src, "megatron.num_experts", err);
    if (!rc)
        rc = config_set_int(config, "num_experts_per_tok", src, "megatron.moe_router_topk", err);
    if (rc)
        return rc;
    /* Megatron normalises the top-k probabilities unless the softmax came first (moe_router_pre_softmax) */
    bool pre_softmax = hf_metadata_flag(src, "megatron.moe_router_pre_softmax");
    json_object_set_new(config, "norm_topk_prob", json_boolean(!pre_softmax));
    json_object_set_new(config, "decoder_sparse_step", json_integer(1));
    json_t *dense = json_array();
    for (long long i = 0; i < l->count; i++)
        if (!l->moe[i])
            json_array_append_new(dense, json_integer(i));
    json_object_set_new(config, "mlp_only_layers", dense);
    return CKPT_OK;
}

/* YaRN, when the args ask for it (MLA's rope_type, or the position embedding type). */
static void rope_scaling(json_t *config, const ckpt_source *src)
{
    const char *type = ckpt_source_metadata_value(src, "megatron.rope_type");
    const char *position = ckpt_source_metadata_value(src, "megatron.position_embedding_type");
    if (!((type && strcmp(type, "yarn") == 0) || (position && strcmp(position, "yarn") == 0)) ||
        !ckpt_source_metadata_value(src, "megatron.rotary_scaling_factor")) {
        json_object_set_new(config, "rope_scaling", json_null());
        return;
    }
    json_t *y = json_object();
    json_object_set_new(y, "type", json_string("yarn"));
    set_real_or(y, "factor", src, "megatron.rotary_scaling_factor", 1.0);
    long long original = hf_metadata_int(src, "megatron.original_max_position_embeddings");
    if (!original)
        original = hf_metadata_int(src, "megatron.yarn_original_max_position_embeddings");
    if (original)
        json_object_set_new(y, "original_max_position_embeddings", json_integer(original));
    static const char *const reals[][3] = {
        {"beta_fast", "megatron.beta_fast", "megatron.yarn_beta_fast"},
        {"beta_slow", "megatron.beta_slow", "megatron.yarn_beta_slow"},
        {"mscale", "megatron.mscale", NULL},
        {"mscale_all_dim", "megatron.mscale_all_dim", NULL},
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        const char *key = ckpt_source_metadata_value(src, reals[i][1]) ? reals[i][1] : reals[i][2];
        if (key && ckpt_source_metadata_value(src, key))
            set_real_or(y, reals[i][0], src, key, 0);
    }
    json_object_set_new(config, "rope_scaling", y);
}

static int deepseek_v3(json_t *config, const struct ckpt_plan *plan, const struct layers *l, ckpt_error *err)
{
    const ckpt_source *src = plan->src;
    json_object_set_new(config, "architectures", json_pack("[s]", "DeepseekV3ForCausalLM"));
    json_object_set_new(config, "model_type", json_string("deepseek_v3"));
    int rc = common_keys(config, plan, "megatron.num_attention_heads", false, err);
    static const char *const ints[][2] = {
        {"kv_lora_rank", "megatron.kv_lora_rank"},
        {"qk_nope_head_dim", "megatron.qk_head_dim"},   /* Megatron's qk_head_dim has no rope part */
        {"qk_rope_head_dim", "megatron.qk_pos_emb_head_dim"},
        {"v_head_dim", "megatron.v_head_dim"},
        {"n_routed_experts", "megatron.num_experts"},
        {"moe_intermediate_size", "megatron.moe_ffn_hidden_size"},
        {"num_experts_per_tok", "megatron.moe_router_topk"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        rc = config_set_int(config, ints[i][0], src, ints[i][1], err);
    long long first_dense = 0;
    while (first_dense < l->count && !l->moe[first_dense])
        first_dense++;
    for (long long i = first_dense; i < l->count && !rc; i++)
        if (!l->moe[i])
            rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: layer %lld is dense after MoE layers: DeepSeek-V3's config "
                           "has only first_k_dense_replace, so cannot write config.json", ckpt_source_path(src), i);
    if (rc)
        return rc;
    long long q_lora = hf_metadata_int(src, "megatron.q_lora_rank"), shared =
        hf_metadata_int(src, "megatron.moe_shared_expert_intermediate_size"), width =
        hf_metadata_int(src, "megatron.moe_ffn_hidden_size");
    json_object_set_new(config, "q_lora_rank", q_lora ? json_integer(q_lora) : json_null());
    json_object_set_new(config, "n_shared_experts", json_integer(width ? shared / width : 0));
    json_object_set_new(config, "first_k_dense_replace", json_integer(first_dense));
    json_object_set_new(config, "num_nextn_predict_layers", json_integer(l->mtp));
    set_int_or(config, "n_group", src, "megatron.moe_router_num_groups", 1);
    set_int_or(config, "topk_group", src, "megatron.moe_router_group_topk", 1);
    set_real_or(config, "routed_scaling_factor", src, "megatron.moe_router_topk_scaling_factor", 1.0);
    const char *scoring = ckpt_source_metadata_value(src, "megatron.moe_router_score_function");
    json_object_set_new(config, "scoring_func", json_string(scoring ? scoring : "softmax"));
    char bias[96];   /* the first MoE layer's router bias: DeepSeek-V3's aux-loss-free routing */
    snprintf(bias, sizeof bias, "model.layers.%lld.mlp.gate.e_score_correction_bias", first_dense);
    json_object_set_new(config, "topk_method", json_string(config_has_output(plan, bias) ? "noaux_tc" : "greedy"));
    json_object_set_new(config, "norm_topk_prob", json_true());
    json_object_set_new(config, "attention_bias", json_false());
    rope_scaling(config, src);
    return CKPT_OK;
}

int hf_config(const struct ckpt_plan *plan, const char *torch_dtype, json_t **out, ckpt_error *err)
{
    enum hf_arch arch;
    *out = NULL;
    int rc = hf_arch_of(plan->src, &arch, err);
    if (rc || arch == HF_ARCH_NONE || arch == HF_ARCH_DEEPSEEK_MP)   /* no arguments to write one from */
        return rc;
    if (arch == HF_ARCH_LLAMA)
        return llama_config(plan, torch_dtype, out, err);
    struct layers l = {0};
    json_t *config = json_object();
    if (!config)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory writing config.json");
    rc = scan_layers(plan, &l, err);
    if (!rc)
        rc = arch == HF_ARCH_DEEPSEEK_V3 ? deepseek_v3(config, plan, &l, err)
                                          : qwen3(config, plan, &l, arch == HF_ARCH_QWEN3_MOE, err);
    if (!rc && torch_dtype)
        json_object_set_new(config, "torch_dtype", json_string(torch_dtype));
    free(l.moe);
    if (rc) {
        json_decref(config);
        return rc;
    }
    *out = config;
    return CKPT_OK;
}
