/*
 * rename_deepseek.c: `--rename hf` for DeepSeek-V3's own inference names
 * (model{i}-mp{N}.safetensors, formats/safetensors/deepseek_mp.c): the
 * inverse of DeepSeek-V3's inference/convert.py (deepseek-ai/DeepSeek-V3 @
 * 9b4e9788, lines 11-30 and 56-65), which drops `model.`, turns self_attn
 * into attn, mlp into ffn, weight_scale_inv into scale and
 * e_score_correction_bias into bias, then renames each module by its
 * `mapping`.  Every fp8 weight's `scale` goes back to `weight_scale_inv`
 * (or is consumed when the weight is dequantized).  The MTP layer is not
 * there: convert.py leaves layer 61 out.
 */
#include "rename_hf.h"

/* A linear of layer $1: its weight and its fp8 block scales. */
#define LINEAR(DS, HF)                                                                                         \
    "layers.*." DS ".weight rename=model.layers.$1." HF ".weight\n"                                            \
    "layers.*." DS ".scale rename=model.layers.$1." HF ".weight_scale_inv\n"
#define SWIGLU(DS, HF) LINEAR(DS "w1", HF "gate_proj") LINEAR(DS "w3", HF "up_proj") LINEAR(DS "w2", HF "down_proj")

static const char rules[] =
    "# DeepSeek-V3's inference names (inference/convert.py) back to Hugging Face's\n"
    "embed.weight rename=model.embed_tokens.weight\n"
    "norm.weight rename=model.norm.weight\n"
    "head.weight rename=lm_head.weight\n"
    "layers.*.attn_norm.weight rename=model.layers.$1.input_layernorm.weight\n"
    "layers.*.ffn_norm.weight rename=model.layers.$1.post_attention_layernorm.weight\n"
    "layers.*.attn.q_norm.weight rename=model.layers.$1.self_attn.q_a_layernorm.weight\n"
    "layers.*.attn.kv_norm.weight rename=model.layers.$1.self_attn.kv_a_layernorm.weight\n"
    LINEAR("attn.wq", "self_attn.q_proj") LINEAR("attn.wq_a", "self_attn.q_a_proj")
    LINEAR("attn.wq_b", "self_attn.q_b_proj") LINEAR("attn.wkv_a", "self_attn.kv_a_proj_with_mqa")
    LINEAR("attn.wkv_b", "self_attn.kv_b_proj") LINEAR("attn.wo", "self_attn.o_proj")
    "layers.*.ffn.gate.weight rename=model.layers.$1.mlp.gate.weight\n"
    "layers.*.ffn.gate.bias dtype=f32 rename=model.layers.$1.mlp.gate.e_score_correction_bias\n"
    SWIGLU("ffn.", "mlp.") SWIGLU("ffn.shared_experts.", "mlp.shared_experts.")
    "layers.*.ffn.experts.*.w1.weight rename=model.layers.$1.mlp.experts.$2.gate_proj.weight\n"
    "layers.*.ffn.experts.*.w1.scale rename=model.layers.$1.mlp.experts.$2.gate_proj.weight_scale_inv\n"
    "layers.*.ffn.experts.*.w3.weight rename=model.layers.$1.mlp.experts.$2.up_proj.weight\n"
    "layers.*.ffn.experts.*.w3.scale rename=model.layers.$1.mlp.experts.$2.up_proj.weight_scale_inv\n"
    "layers.*.ffn.experts.*.w2.weight rename=model.layers.$1.mlp.experts.$2.down_proj.weight\n"
    "layers.*.ffn.experts.*.w2.scale rename=model.layers.$1.mlp.experts.$2.down_proj.weight_scale_inv\n";

int rename_deepseek_add(struct ruleset *rs, const char *set, ckpt_error *err)
{
    return ruleset_parse(rs, rules, set, err);
}
