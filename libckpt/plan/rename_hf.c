/*
 * rename_hf.c: `--rename hf`, Megatron-LM names to Hugging Face ones, in
 * the rules language users write (docs/rules.md); rule_sets.c offers it.
 *
 * The rules are one table per kind of layer part, each written once for a
 * Megatron prefix L and a Hugging Face prefix H: decoder layer N is
 * `decoder.layers.N.` -> `model.layers.N.`, MTP layer k's inner layer
 * `mtp.layers.k.transformer_layer.` -> `model.layers.{num_layers + k}.`
 * (DeepSeek-V3's layer 61).  Fused QKV is num_query_groups groups of
 * [heads_per_group query heads; k; v], so split=h/G:1:1 within G groups
 * gives q, k and v whatever the head size; SwiGLU fc1 (dense, routed and
 * shared experts alike) is [gate; up].  MLA keeps Hugging Face's rows, so
 * its tensors are renamed only (no rope permutation: both sides
 * de-interleave at run time).  Biases come apart like their weights.
 * Vocabulary padding rows are cut; non-weights are dropped.  The router's
 * expert_bias is written F32, as DeepSeek's e_score_correction_bias is.
 * The megatron.* keys are the metadata the Megatron readers record.
 * Sources: Megatron-Bridge deepseek/common.py and qwen3_moe_bridge.py,
 * Pai-Megatron-Patch m2h_synchronizer.py (moe-layouts.md 4.3).
 */
#include "rename_hf.h"

#include "hf_arch.h"
#include "libckpt/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QKV_ROWS "groups=${megatron.num_query_groups} split=${megatron.heads_per_group}:1:1 "
#define VOCAB_ROWS "rows=${megatron.vocab_size} "

#define DECODER "decoder.layers.*.", "model.layers.$1."
#define MTP "mtp.layers.*.transformer_layer.", "model.layers.${megatron.num_layers+$1}."
#define APPLY(table, ...) table(__VA_ARGS__)   /* so that DECODER and MTP give a table both its prefixes */

/* Grouped-query attention (Llama, Qwen2, Qwen3), parameter P of each linear. */
#define GQA_LINEARS(L, H, P)                                                                                   \
    L "self_attention.linear_qkv." P " " QKV_ROWS "rename=" H "self_attn.q_proj." P "," H "self_attn.k_proj." P  \
      "," H "self_attn.v_proj." P "\n"                                                                         \
    L "self_attention.linear_proj." P " rename=" H "self_attn.o_proj." P "\n"
#define GQA(L, H)                                                                                              \
    GQA_LINEARS(L, H, "weight") GQA_LINEARS(L, H, "bias")                                                      \
    L "self_attention.linear_qkv.layer_norm_weight rename=" H "input_layernorm.weight\n"                       \
    L "self_attention.q_layernorm.weight rename=" H "self_attn.q_norm.weight\n"                                \
    L "self_attention.k_layernorm.weight rename=" H "self_attn.k_norm.weight\n"

/* Multi-latent attention (DeepSeek-V3): q/kv down and up projections, their norms (TE-fused or apart). */
#define MLA(L, H)                                                                                              \
    L "self_attention.linear_q_proj.weight rename=" H "self_attn.q_proj.weight\n"                              \
    L "self_attention.linear_q_down_proj.weight rename=" H "self_attn.q_a_proj.weight\n"                       \
    L "self_attention.linear_q_up_proj.layer_norm_weight rename=" H "self_attn.q_a_layernorm.weight\n"         \
    L "self_attention.q_layernorm.weight rename=" H "self_attn.q_a_layernorm.weight\n"                         \
    L "self_attention.linear_q_up_proj.weight rename=" H "self_attn.q_b_proj.weight\n"                         \
    L "self_attention.linear_kv_down_proj.weight rename=" H "self_attn.kv_a_proj_with_mqa.weight\n"            \
    L "self_attention.linear_kv_up_proj.layer_norm_weight rename=" H "self_attn.kv_a_layernorm.weight\n"       \
    L "self_attention.kv_layernorm.weight rename=" H "self_attn.kv_a_layernorm.weight\n"                       \
    L "self_attention.linear_kv_up_proj.weight rename=" H "self_attn.kv_b_proj.weight\n"                       \
    L "self_attention.linear_proj.weight rename=" H "self_attn.o_proj.weight\n"

/* A gated MLP under prefix M (Megatron) / N (Hugging Face), parameter P. */
#define SWIGLU(M, N, P)                                                                                        \
    M "linear_fc1." P " split=1:1 rename=" N "gate_proj." P "," N "up_proj." P "\n"                            \
    M "linear_fc2." P " rename=" N "down_proj." P "\n"

/* The MLP of a layer: dense, or the router, routed experts ($2) and shared experts of an MoE layer. */
#define MLP(L, H)                                                                                              \
    SWIGLU(L "mlp.", H "mlp.", "weight") SWIGLU(L "mlp.", H "mlp.", "bias")                                    \
    L "input_layernorm.weight rename=" H "input_layernorm.weight\n"                                            \
    L "mlp.linear_fc1.layer_norm_weight rename=" H "post_attention_layernorm.weight\n"                         \
    L "pre_mlp_layernorm.weight rename=" H "post_attention_layernorm.weight\n"                                 \
    L "mlp.router.weight rename=" H "mlp.gate.weight\n"                                                        \
    L "mlp.router.expert_bias dtype=f32 rename=" H "mlp.gate.e_score_correction_bias\n"                        \
    SWIGLU(L "mlp.experts.local_experts.*.", H "mlp.experts.$2.", "weight")                                    \
    SWIGLU(L "mlp.shared_experts.", H "mlp.shared_experts.", "weight")

#define MTP_PARTS                                                                                              \
    "mtp.layers.*.enorm.weight rename=model.layers.${megatron.num_layers+$1}.enorm.weight\n"                   \
    "mtp.layers.*.hnorm.weight rename=model.layers.${megatron.num_layers+$1}.hnorm.weight\n"                   \
    "mtp.layers.*.eh_proj.weight rename=model.layers.${megatron.num_layers+$1}.eh_proj.weight\n"               \
    "mtp.layers.*.final_layernorm.weight rename=model.layers.${megatron.num_layers+$1}.shared_head.norm.weight\n"

/* Legacy Megatron-LM names (language_model.encoder...), parameter P of each linear. */
#define LEGACY_LINEARS(P)                                                                                      \
    "language_model.encoder.layers.*.self_attention.query_key_value." P " " QKV_ROWS                           \
    "rename=model.layers.$1.self_attn.q_proj." P ",model.layers.$1.self_attn.k_proj." P                        \
    ",model.layers.$1.self_attn.v_proj." P "\n"                                                                \
    "language_model.encoder.layers.*.self_attention.dense." P " rename=model.layers.$1.self_attn.o_proj." P "\n" \
    "language_model.encoder.layers.*.mlp.dense_h_to_4h." P " split=1:1 rename=model.layers.$1.mlp.gate_proj." P \
    ",model.layers.$1.mlp.up_proj." P "\n"                                                                     \
    "language_model.encoder.layers.*.mlp.dense_4h_to_h." P " rename=model.layers.$1.mlp.down_proj." P "\n"

/* What every architecture shares: the embedding, the final norm, the output layer, the legacy names. */
static const char common[] =
    "embedding.word_embeddings.weight " VOCAB_ROWS "rename=model.embed_tokens.weight\n"
    "decoder.final_layernorm.weight rename=model.norm.weight\n"
    "output_layer.weight " VOCAB_ROWS "rename=lm_head.weight\n"
    "# legacy Megatron-LM names, same layouts; since Megatron-LM 4dc07152 (2023-09) norms are *_norm\n"
    LEGACY_LINEARS("weight") LEGACY_LINEARS("bias")
    "language_model.embedding.word_embeddings.weight " VOCAB_ROWS "rename=model.embed_tokens.weight\n"
    "language_model.encoder.layers.*.input_layernorm.weight rename=model.layers.$1.input_layernorm.weight\n"
    "language_model.encoder.layers.*.input_norm.weight rename=model.layers.$1.input_layernorm.weight\n"
    "language_model.encoder.layers.*.post_attention_layernorm.weight "
    "rename=model.layers.$1.post_attention_layernorm.weight\n"
    "language_model.encoder.layers.*.post_attention_norm.weight "
    "rename=model.layers.$1.post_attention_layernorm.weight\n"
    "language_model.encoder.final_layernorm.weight rename=model.norm.weight\n"
    "language_model.encoder.final_norm.weight rename=model.norm.weight\n"
    "language_model.output_layer.weight " VOCAB_ROWS "rename=lm_head.weight\n"
    "# not weights: Transformer Engine state, rotary frequencies\n"
    "*._extra_state drop\n"
    "*.inv_freq drop\n";

static const char gqa[] = "# grouped-query attention, decoder and MTP layers\n" APPLY(GQA, DECODER) APPLY(GQA, MTP);
static const char mla[] = "# multi-latent attention, decoder and MTP layers\n" APPLY(MLA, DECODER) APPLY(MLA, MTP);
static const char mlp[] = "# the MLPs, decoder and MTP layers\n" APPLY(MLP, DECODER) APPLY(MLP, MTP) MTP_PARTS;

#define MAX_MTP 64

/*
 * DeepSeek-V3's layer L+k also holds copies of the embedding and the output
 * layer (embed_tokens, shared_head.head), which Megatron shares with the
 * main model: one copy= line each, for the MTP layers the source holds.
 */
static int add_mtp_copies(struct ruleset *rs, const char *set, const ckpt_source *src, ckpt_error *err)
{
    long long layers = hf_metadata_int(src, "megatron.num_layers");
    char name[64], *text = malloc(2 * MAX_MTP * 64 + 256);
    if (!text)
        return ckpt_fail(err, CKPT_ERR_NOMEM, "out of memory");
    int rc = CKPT_OK;
    for (int part = 0; part < 2 && !rc; part++) {
        const char *whole = part ? "output_layer.weight" : "embedding.word_embeddings.weight";
        size_t n = (size_t)snprintf(text, 256, "%s copy=", whole);
        int k = 0;
        size_t index;
        for (; k < MAX_MTP; k++) {
            snprintf(name, sizeof name, "mtp.layers.%d.enorm.weight", k);
            if (ckpt_source_find(src, name, &index) != CKPT_OK)
                break;
            n += (size_t)snprintf(text + n, 64, "%smodel.layers.%lld.%s", k ? "," : "", layers + k,
                                  part ? "shared_head.head.weight" : "embed_tokens.weight");
        }
        if (k)
            rc = ruleset_parse(rs, text, set, err);
    }
    free(text);
    return rc;
}

int rename_hf_add(struct ruleset *rs, const char *set, const ckpt_source *src, bool llama_only, ckpt_error *err)
{
    enum hf_arch arch = HF_ARCH_LLAMA;
    int rc = src ? hf_arch_of(src, &arch, err) : CKPT_OK;
    if (!rc && llama_only && arch != HF_ARCH_LLAMA && arch != HF_ARCH_NONE)
        rc = ckpt_fail(err, CKPT_ERR_UNSUPPORTED, "%s: rename set %s is for Llama-architecture checkpoints; this one "
                       "is %s: use the rename set hf", ckpt_source_path(src), set, hf_arch_name(arch));
    if (!rc && arch == HF_ARCH_DEEPSEEK_MP)
        return rename_deepseek_add(rs, set, err);
    if (!rc)
        rc = ruleset_parse(rs, common, set, err);
    if (!rc)
        rc = ruleset_parse(rs, arch == HF_ARCH_DEEPSEEK_V3 ? mla : gqa, set, err);
    if (!rc)
        rc = ruleset_parse(rs, mlp, set, err);
    if (!rc && src && arch == HF_ARCH_DEEPSEEK_V3)
        rc = add_mtp_copies(rs, set, src, err);
    return rc;
}
