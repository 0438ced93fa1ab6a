/*
 * rule_sets.c: the built-in rules, written in the language users write
 * (docs/rules.md): the targets, and rename sets that map one naming scheme
 * onto another.
 */
#include "rules.h"

#include "libckpt/common/error.h"

#include <string.h>

static const struct {
    const char *name;
    const char *rules;
} targets[] = {
    {"nd", ""},
    {"ascend-310p",
     "# 310P computes in fp16 only; matmul weights are tiled FRACTAL_NZ as stored ([out, in])\n"
     "*               dtype=f16\n"
     "*.weight        layout=nz\n"
     "*embed*         layout=nd\n"
     "*norm*          layout=nd\n"
     "*lm_head*       layout=nd\n"
     "*output_layer*  layout=nd\n"},
    {"ascend-910b",
     "# 910B computes in bf16 and fp16; wider and fp8 types become bf16\n"
     "* from=f32      dtype=bf16\n"
     "* from=f8_e4m3  dtype=bf16\n"
     "* from=f8_e5m2  dtype=bf16\n"},
};

/*
 * Megatron-LM GPT/Llama names (Megatron-core and legacy) to Hugging Face
 * Llama names.  Fused QKV is num_query_groups groups of [heads_per_group
 * query heads; k; v] (each head kv_channels rows), so split=h/G:1:1 within
 * G groups gives q, k and v whatever the head size; SwiGLU fc1 is [gate;
 * up].  Biases come apart the same way as their weights.  Vocabulary
 * padding rows are cut; non-weights are dropped.  The megatron.* keys are
 * the metadata the Megatron reader records.
 */
#define QKV_ROWS "groups=${megatron.num_query_groups} split=${megatron.heads_per_group}:1:1 "
#define QKV_NAMES(P)                                                                                         \
    "rename=model.layers.$1.self_attn.q_proj." P ",model.layers.$1.self_attn.k_proj." P ","                 \
    "model.layers.$1.self_attn.v_proj." P "\n"
#define FC1_NAMES(P) "split=1:1 rename=model.layers.$1.mlp.gate_proj." P ",model.layers.$1.mlp.up_proj." P "\n"
#define VOCAB_ROWS "rows=${megatron.vocab_size} "

/* Megatron's per-layer linear modules (core name, legacy name) and their Hugging Face Llama names. */
#define LINEARS(P)                                                                                           \
    "decoder.layers.*.self_attention.linear_qkv." P " " QKV_ROWS QKV_NAMES(P)                                \
    "decoder.layers.*.self_attention.linear_proj." P " rename=model.layers.$1.self_attn.o_proj." P "\n"      \
    "decoder.layers.*.mlp.linear_fc1." P " " FC1_NAMES(P)                                                    \
    "decoder.layers.*.mlp.linear_fc2." P " rename=model.layers.$1.mlp.down_proj." P "\n"                     \
    "language_model.encoder.layers.*.self_attention.query_key_value." P " " QKV_ROWS QKV_NAMES(P)            \
    "language_model.encoder.layers.*.self_attention.dense." P " rename=model.layers.$1.self_attn.o_proj." P "\n" \
    "language_model.encoder.layers.*.mlp.dense_h_to_4h." P " " FC1_NAMES(P)                                  \
    "language_model.encoder.layers.*.mlp.dense_4h_to_h." P " rename=model.layers.$1.mlp.down_proj." P "\n"

static const char hf_llama[] =
    "# the linear layers (Megatron-core names, then legacy Megatron-LM names), weights and biases\n"
    LINEARS("weight") LINEARS("bias")
    "# Megatron-core names\n"
    "embedding.word_embeddings.weight " VOCAB_ROWS "rename=model.embed_tokens.weight\n"
    "decoder.layers.*.self_attention.linear_qkv.layer_norm_weight rename=model.layers.$1.input_layernorm.weight\n"
    "decoder.layers.*.input_layernorm.weight rename=model.layers.$1.input_layernorm.weight\n"
    "decoder.layers.*.mlp.linear_fc1.layer_norm_weight rename=model.layers.$1.post_attention_layernorm.weight\n"
    "decoder.layers.*.pre_mlp_layernorm.weight rename=model.layers.$1.post_attention_layernorm.weight\n"
    "decoder.final_layernorm.weight rename=model.norm.weight\n"
    "output_layer.weight " VOCAB_ROWS "rename=lm_head.weight\n"
    "# legacy Megatron-LM names, same layouts\n"
    "language_model.embedding.word_embeddings.weight " VOCAB_ROWS "rename=model.embed_tokens.weight\n"
    "language_model.encoder.layers.*.input_layernorm.weight rename=model.layers.$1.input_layernorm.weight\n"
    "language_model.encoder.layers.*.post_attention_layernorm.weight "
    "rename=model.layers.$1.post_attention_layernorm.weight\n"
    "language_model.encoder.final_layernorm.weight rename=model.norm.weight\n"
    "language_model.output_layer.weight " VOCAB_ROWS "rename=lm_head.weight\n"
    "# not weights: Transformer Engine state, rotary frequencies\n"
    "*._extra_state drop\n"
    "*.inv_freq drop\n";

static const struct {
    const char *name;
    const char *rules;
    const char *key, *value;   /* refused when the source metadata gives `key` another value */
} renames[] = {
    {"hf-llama", hf_llama, "megatron.swiglu", "true"},   /* Llama's MLP is gated: fc1 must be [gate; up] */
};

int ruleset_add_target(struct ruleset *rs, const char *target, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, target) == 0)
            return ruleset_parse(rs, targets[i].rules, target, err);
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown target '%s' (ascend-310p, ascend-910b, nd)", target);
}

int ruleset_add_rename(struct ruleset *rs, const char *set, const ckpt_source *src, ckpt_error *err)
{
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
        if (strcmp(renames[i].name, set) != 0)
            continue;
        const char *value = src ? ckpt_source_metadata_value(src, renames[i].key) : NULL;
        if (value && strcmp(value, renames[i].value) != 0)
            return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: rename set %s needs %s = %s, not %s",
                             ckpt_source_path(src), set, renames[i].key, renames[i].value, value);
        return ruleset_parse(rs, renames[i].rules, set, err);
    }
    return ckpt_fail(err, CKPT_ERR_ARG, "unknown rename set '%s' (hf-llama)", set);
}
