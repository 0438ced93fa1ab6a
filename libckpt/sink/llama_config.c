/*
 * llama_config.c: a Hugging Face Llama config.json from the megatron.*
 * metadata the Megatron reader records, for `--rename hf-llama` of a source
 * that has no config.json (docs/rules.md).  Loaders such as vllm-ascend
 * need it to build the model the renamed weights belong to.
 */
#include "llama_config.h"

#include "libckpt/common/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int config_set_int(json_t *config, const char *name, const ckpt_source *src, const char *key, ckpt_error *err)
{
    const char *v = ckpt_source_metadata_value(src, key);
    char *end;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || n <= 0)
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: metadata %s is %s%s%s, not a positive integer: cannot write "
                         "config.json", ckpt_source_path(src), key, v ? "'" : "missing", v ? v : "", v ? "'" : "");
    json_object_set_new(config, name, json_integer(n));
    return CKPT_OK;
}

int config_set_real(json_t *config, const char *name, const ckpt_source *src, const char *key, ckpt_error *err)
{
    const char *v = ckpt_source_metadata_value(src, key);
    if (!v)
        return CKPT_OK;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x > 0))
        return ckpt_fail(err, CKPT_ERR_FORMAT, "%s: metadata %s is '%s', not a positive number", ckpt_source_path(src),
                         key, v);
    json_object_set_new(config, name, json_real(x));
    return CKPT_OK;
}

bool config_has_output(const struct ckpt_plan *plan, const char *name)
{
    for (size_t i = 0; i < plan->item_count; i++)
        if (strcmp(plan->items[i].pub.name, name) == 0)
            return true;
    return false;
}

/*
 * The architecture the written biases make: Llama without biases, Llama's
 * attention_bias (q, k, v and o) and mlp_bias (gate, up, down) options, or
 * Qwen2, which is Llama with q, k and v biases only.  Other mixtures have no
 * Hugging Face model of these layers and are refused.
 */
static int architecture(const struct ckpt_plan *plan, json_t **out, ckpt_error *err)
{
    bool qkv = config_has_output(plan, "model.layers.0.self_attn.q_proj.bias");
    bool o = config_has_output(plan, "model.layers.0.self_attn.o_proj.bias");
    bool mlp = config_has_output(plan, "model.layers.0.mlp.down_proj.bias") ||
               config_has_output(plan, "model.layers.0.mlp.gate_proj.bias");
    bool tied = !config_has_output(plan, "lm_head.weight");
    if (qkv && !o && !mlp)
        *out = json_pack("{s:[s], s:s, s:s, s:b}", "architectures", "Qwen2ForCausalLM", "model_type", "qwen2",
                         "hidden_act", "silu", "tie_word_embeddings", tied);
    else if (qkv == o)
        *out = json_pack("{s:[s], s:s, s:s, s:b, s:b, s:b}", "architectures", "LlamaForCausalLM", "model_type",
                         "llama", "hidden_act", "silu", "tie_word_embeddings", tied, "attention_bias", qkv, "mlp_bias",
                         mlp);
    else
        return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: biases on %s but not on %s fit no Hugging Face Llama or "
                         "Qwen2 model: cannot write config.json", ckpt_source_path(plan->src),
                         o ? "o_proj" : "q/k/v_proj and the MLP", o ? "q/k/v_proj" : "o_proj");
    return *out ? CKPT_OK : ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory writing config.json");
}

int llama_config(const struct ckpt_plan *plan, const char *torch_dtype, json_t **out, ckpt_error *err)
{
    const ckpt_source *src = plan->src;
    *out = NULL;
    if (!ckpt_source_metadata_value(src, "megatron.hidden_size"))
        return CKPT_OK;   /* not a Megatron source: nothing to describe the model with */
    json_t *config;
    int rc = architecture(plan, &config, err);
    if (rc)
        return rc;
    static const char *const ints[][2] = {
        {"hidden_size", "megatron.hidden_size"},
        {"intermediate_size", "megatron.ffn_hidden_size"},
        {"num_attention_heads", "megatron.num_attention_heads"},
        {"num_key_value_heads", "megatron.num_query_groups"},
        {"head_dim", "megatron.kv_channels"},
        {"num_hidden_layers", "megatron.num_layers"},
        {"vocab_size", "megatron.vocab_size"},
        {"max_position_embeddings", "megatron.max_position_embeddings"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        rc = config_set_int(config, ints[i][0], src, ints[i][1], err);
    if (!rc)
        rc = config_set_real(config, "rms_norm_eps", src, "megatron.norm_epsilon", err);
    if (!rc)
        rc = config_set_real(config, "rope_theta", src, "megatron.rotary_base", err);
    if (!rc && torch_dtype)
        json_object_set_new(config, "torch_dtype", json_string(torch_dtype));
    if (rc) {
        json_decref(config);
        return rc;
    }
    *out = config;
    return CKPT_OK;
}
