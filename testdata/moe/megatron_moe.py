"""The tiny MoE models of make_moe_models.py as Megatron-core holds them, unsharded.

Shared by make_legacy.py and make_torch_dist.py, which cut these full tensors the way each
checkpoint format shards them.  Every layout follows the Megatron-LM source (NVIDIA/Megatron-LM
@ d98e8a64, and the core_v0.14.0 tag for what HEAD removed), cited beside the code that builds
it; the Hugging Face names come from the models themselves, so nothing here is derived from
libckpt's own mapping.

- Megatron's global tensor of a SwiGLU fc1 is [gate; up] (megatron/core/transformer/mlp.py:427-495,
  apply_swiglu_sharded_factory), for the dense MLP, the shared experts and every routed expert.
- Megatron's fused GQA linear_qkv is, per query group, the group's query heads, then its k head,
  then its v head (megatron/core/transformer/attention.py, get_query_key_value_tensors).
- MLA keeps Hugging Face's rows: q_b_proj and kv_b_proj per head [nope; rope] and [k_nope; v],
  kv_a_proj_with_mqa as [kv latent; k_rope], no rope permutation
  (megatron/core/transformer/multi_latent_attention.py:508-630, 751; Megatron-Bridge
  deepseek/common.py:26-159 maps them one to one).
- MoE layers keep a separate pre_mlp_layernorm, dense layers of a mixed model keep Transformer
  Engine's fused mlp.linear_fc1.layer_norm_weight (megatron/core/models/gpt/gpt_layer_specs.py:282,
  313, 336, 563-671); MLA keeps a separate input_layernorm, GQA fuses it into
  linear_qkv.layer_norm_weight; the q/kv layernorms of MLA are fused into the up projections
  (linear_q_up_proj.layer_norm_weight, core >= 0.11).
- Router: mlp.router.weight [E, H] and the F32 buffer mlp.router.expert_bias [E]
  (megatron/core/transformer/moe/router.py:64-90, 178-201); shared experts are an MLP of width
  moe_shared_expert_intermediate_size (moe/shared_experts.py:102-145).
- MTP layer k: mtp.layers.k.{enorm,hnorm,eh_proj,final_layernorm} and its inner decoder layer
  (transformer/multi_token_prediction.py:1157-1247); eh_proj takes cat(enorm(embedding),
  hnorm(hidden)) (line 1341), as DeepSeek's eh_proj does.
- The vocabulary is padded to PADDED_VOCAB rows with extra random rows, which a conversion must cut.

Experts are named here as Megatron's SequentialMLP names them, with the GLOBAL expert index:
decoder.layers.N.mlp.experts.local_experts.G.linear_fc{1,2}.weight.
"""
import argparse
import os
import sys
from collections import OrderedDict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "megatron"))
import make_moe_models as mm  # noqa: E402
from make_fixtures import AttnBackend, ModelType  # noqa: E402  (Megatron's enums, as real args pickle them)

PADDED_VOCAB = 128


def padding(seed, rows, hidden):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, hidden, generator=g) * 0.05).to(torch.bfloat16)


def deepseek_v3_args(**changes):
    """Megatron's args for the DeepSeek-V3-like model (the names of megatron/training/arguments.py)."""
    c = mm.DEEPSEEK_V3
    dense = c["first_k_dense_replace"]
    a = dict(
        num_layers=c["num_hidden_layers"], hidden_size=c["hidden_size"], ffn_hidden_size=c["intermediate_size"],
        num_attention_heads=c["num_attention_heads"], num_query_groups=None, group_query_attention=False,
        kv_channels=c["hidden_size"] // c["num_attention_heads"], swiglu=True, padded_vocab_size=PADDED_VOCAB,
        vocab_size=c["vocab_size"], max_position_embeddings=c["max_position_embeddings"],
        norm_epsilon=c["rms_norm_eps"], rotary_base=int(c["rope_theta"]), position_embedding_type="rope",
        normalization="RMSNorm", untie_embeddings_and_output_weights=True, add_bias_linear=False,
        add_qkv_bias=False, params_dtype=torch.bfloat16, bf16=True, fp16=False,
        multi_latent_attention=True, q_lora_rank=c["q_lora_rank"], kv_lora_rank=c["kv_lora_rank"],
        qk_head_dim=c["qk_nope_head_dim"], qk_pos_emb_head_dim=c["qk_rope_head_dim"], v_head_dim=c["v_head_dim"],
        qk_layernorm=True, rope_type="yarn", rotary_scaling_factor=c["rope_scaling"]["factor"],
        mscale=c["rope_scaling"]["mscale"], mscale_all_dim=c["rope_scaling"]["mscale_all_dim"],
        original_max_position_embeddings=c["rope_scaling"]["original_max_position_embeddings"],
        beta_fast=float(c["rope_scaling"]["beta_fast"]), beta_slow=float(c["rope_scaling"]["beta_slow"]),
        num_experts=c["n_routed_experts"], moe_ffn_hidden_size=c["moe_intermediate_size"],
        moe_shared_expert_intermediate_size=c["moe_intermediate_size"] * c["n_shared_experts"],
        moe_router_topk=c["num_experts_per_tok"], moe_layer_freq=[0] * dense + [1] * (c["num_hidden_layers"] - dense),
        moe_router_enable_expert_bias=True, moe_router_score_function="sigmoid",
        moe_router_topk_scaling_factor=c["routed_scaling_factor"], moe_router_num_groups=c["n_group"],
        moe_router_group_topk=c["topk_group"], moe_router_pre_softmax=True, moe_grouped_gemm=True,
        moe_use_legacy_grouped_gemm=False, moe_shared_expert_gate=False, moe_extended_tp=False,
        mtp_num_layers=c["num_nextn_predict_layers"],
    )
    a.update(changes)
    return a


def qwen3_moe_args(**changes):
    c = mm.QWEN3_MOE
    a = dict(
        num_layers=c["num_hidden_layers"], hidden_size=c["hidden_size"], ffn_hidden_size=c["intermediate_size"],
        num_attention_heads=c["num_attention_heads"], num_query_groups=c["num_key_value_heads"],
        group_query_attention=True, kv_channels=c["head_dim"], swiglu=True, padded_vocab_size=PADDED_VOCAB,
        vocab_size=c["vocab_size"], max_position_embeddings=c["max_position_embeddings"],
        norm_epsilon=c["rms_norm_eps"], rotary_base=int(c["rope_theta"]), position_embedding_type="rope",
        normalization="RMSNorm", untie_embeddings_and_output_weights=True, add_bias_linear=False,
        add_qkv_bias=False, params_dtype=torch.bfloat16, bf16=True, fp16=False, qk_layernorm=True,
        num_experts=c["num_experts"], moe_ffn_hidden_size=c["moe_intermediate_size"],
        moe_shared_expert_intermediate_size=None, moe_router_topk=c["num_experts_per_tok"], moe_layer_freq=1,
        moe_router_score_function="softmax", moe_router_pre_softmax=False, moe_router_enable_expert_bias=False,
        moe_grouped_gemm=True, moe_use_legacy_grouped_gemm=False, moe_extended_tp=False, mtp_num_layers=None,
    )
    a.update(changes)
    return a


def namespace(args, tp, pp, ep, etp, **more):
    """argparse.Namespace with the parallel sizes and the usual training state, as a checkpoint pickles it."""
    a = dict(args, tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, expert_model_parallel_size=ep,
             expert_tensor_parallel_size=etp, virtual_pipeline_model_parallel_size=None,
             num_layers_per_virtual_pipeline_stage=None, decoder_first_pipeline_num_layers=None,
             decoder_last_pipeline_num_layers=None, pipeline_model_parallel_layout=None,
             account_for_embedding_in_pipeline_split=False, account_for_loss_in_pipeline_split=False,
             model_type=ModelType.encoder_or_decoder, attention_backend=AttnBackend.auto, seed=1234, lr=3e-4,
             iteration=10, consumed_train_samples=640, data_path=["/data/tokens_text_document"],
             ckpt_format="torch")
    a.update(more)
    return argparse.Namespace(**a)


def swiglu_fc1(hf, p):
    return torch.cat([hf[p + "gate_proj.weight"], hf[p + "up_proj.weight"]])


def moe_mlp(m, hf, mp, hp, experts, shared):
    """The router, the routed experts (global indices) and the shared experts of one MoE layer."""
    m[mp + "router.weight"] = hf[hp + "gate.weight"]
    if hp + "gate.e_score_correction_bias" in hf:
        m[mp + "router.expert_bias"] = hf[hp + "gate.e_score_correction_bias"]
    for e in range(experts):
        m[mp + f"experts.local_experts.{e}.linear_fc1.weight"] = swiglu_fc1(hf, hp + f"experts.{e}.")
        m[mp + f"experts.local_experts.{e}.linear_fc2.weight"] = hf[hp + f"experts.{e}.down_proj.weight"]
    if shared:
        m[mp + "shared_experts.linear_fc1.weight"] = swiglu_fc1(hf, hp + "shared_experts.")
        m[mp + "shared_experts.linear_fc2.weight"] = hf[hp + "shared_experts.down_proj.weight"]


def deepseek_v3_layer(m, hf, p, h, moe):
    c = mm.DEEPSEEK_V3
    m[p + "input_layernorm.weight"] = hf[h + "input_layernorm.weight"]
    a = p + "self_attention."
    m[a + "linear_q_down_proj.weight"] = hf[h + "self_attn.q_a_proj.weight"]
    m[a + "linear_q_up_proj.layer_norm_weight"] = hf[h + "self_attn.q_a_layernorm.weight"]
    m[a + "linear_q_up_proj.weight"] = hf[h + "self_attn.q_b_proj.weight"]
    m[a + "linear_kv_down_proj.weight"] = hf[h + "self_attn.kv_a_proj_with_mqa.weight"]
    m[a + "linear_kv_up_proj.layer_norm_weight"] = hf[h + "self_attn.kv_a_layernorm.weight"]
    m[a + "linear_kv_up_proj.weight"] = hf[h + "self_attn.kv_b_proj.weight"]
    m[a + "linear_proj.weight"] = hf[h + "self_attn.o_proj.weight"]
    if moe:
        m[p + "pre_mlp_layernorm.weight"] = hf[h + "post_attention_layernorm.weight"]
        moe_mlp(m, hf, p + "mlp.", h + "mlp.", c["n_routed_experts"], True)
    else:
        m[p + "mlp.linear_fc1.layer_norm_weight"] = hf[h + "post_attention_layernorm.weight"]
        m[p + "mlp.linear_fc1.weight"] = swiglu_fc1(hf, h + "mlp.")
        m[p + "mlp.linear_fc2.weight"] = hf[h + "mlp.down_proj.weight"]


def deepseek_v3_megatron():
    """(full Megatron tensors, the Hugging Face tensors they came from)."""
    c, hf = mm.DEEPSEEK_V3, mm.deepseek_v3_tensors()
    layers, h, pad = c["num_hidden_layers"], c["hidden_size"], PADDED_VOCAB - c["vocab_size"]
    m = OrderedDict()
    m["embedding.word_embeddings.weight"] = torch.cat([hf["model.embed_tokens.weight"], padding(1, pad, h)])
    for i in range(layers):
        deepseek_v3_layer(m, hf, f"decoder.layers.{i}.", f"model.layers.{i}.", i >= c["first_k_dense_replace"])
    m["decoder.final_layernorm.weight"] = hf["model.norm.weight"]
    m["output_layer.weight"] = torch.cat([hf["lm_head.weight"], padding(2, pad, h)])
    for k in range(c["num_nextn_predict_layers"]):
        p, hp = f"mtp.layers.{k}.", f"model.layers.{layers + k}."
        m[p + "enorm.weight"] = hf[hp + "enorm.weight"]
        m[p + "hnorm.weight"] = hf[hp + "hnorm.weight"]
        m[p + "eh_proj.weight"] = hf[hp + "eh_proj.weight"]
        deepseek_v3_layer(m, hf, p + "transformer_layer.", hp, True)
        m[p + "final_layernorm.weight"] = hf[hp + "shared_head.norm.weight"]
    return m, hf


def fused_qkv(q, k, v, groups, head_dim):
    per = q.shape[0] // groups
    parts = []
    for g in range(groups):
        parts += [q[g * per:(g + 1) * per], k[g * head_dim:(g + 1) * head_dim], v[g * head_dim:(g + 1) * head_dim]]
    return torch.cat(parts)


def qwen3_moe_megatron():
    c, hf = mm.QWEN3_MOE, mm.qwen3_moe_tensors()
    h, pad = c["hidden_size"], PADDED_VOCAB - c["vocab_size"]
    m = OrderedDict()
    m["embedding.word_embeddings.weight"] = torch.cat([hf["model.embed_tokens.weight"], padding(3, pad, h)])
    for i in range(c["num_hidden_layers"]):
        p, hp = f"decoder.layers.{i}.", f"model.layers.{i}."
        a = p + "self_attention."
        m[a + "linear_qkv.layer_norm_weight"] = hf[hp + "input_layernorm.weight"]
        m[a + "linear_qkv.weight"] = fused_qkv(hf[hp + "self_attn.q_proj.weight"], hf[hp + "self_attn.k_proj.weight"],
                                               hf[hp + "self_attn.v_proj.weight"], c["num_key_value_heads"],
                                               c["head_dim"])
        m[a + "q_layernorm.weight"] = hf[hp + "self_attn.q_norm.weight"]
        m[a + "k_layernorm.weight"] = hf[hp + "self_attn.k_norm.weight"]
        m[a + "linear_proj.weight"] = hf[hp + "self_attn.o_proj.weight"]
        m[p + "pre_mlp_layernorm.weight"] = hf[hp + "post_attention_layernorm.weight"]
        moe_mlp(m, hf, p + "mlp.", hp + "mlp.", c["num_experts"], False)
    m["decoder.final_layernorm.weight"] = hf["model.norm.weight"]
    m["output_layer.weight"] = torch.cat([hf["lm_head.weight"], padding(4, pad, h)])
    return m, hf


# ---- how each tensor is split over the tensor-parallel ranks ----

REPLICATED, COLUMN, ROW, GATE_UP = "replicated", "column", "row", "gate_up"


def split_kind(name, down_proj_split):
    """Megatron's parallel layers: ColumnParallelLinear splits dim 0 (fc1 per rank as [gate_r; up_r]),
    RowParallelLinear dim 1, everything else is whole on every rank.  The MLA down projections are
    TEColumnParallelLinear up to core 0.13 and a replicated TELinear from 0.14 (commit 720c8b40d8,
    multi_latent_attention.py:525-527, 572-574): `down_proj_split` chooses."""
    if name.endswith(("linear_fc1.weight",)):
        return GATE_UP
    if name.endswith(("linear_fc2.weight", "linear_proj.weight")):
        return ROW
    if name.endswith(("linear_q_down_proj.weight", "linear_kv_down_proj.weight")):
        return COLUMN if down_proj_split else REPLICATED
    if name.endswith(("linear_q_up_proj.weight", "linear_kv_up_proj.weight", "linear_q_proj.weight",
                      "linear_qkv.weight", "word_embeddings.weight", "output_layer.weight", "eh_proj.weight")):
        return COLUMN
    return REPLICATED


def shard(tensor, kind, rank, size):
    """Rank `rank` of `size`'s part of a full tensor."""
    if kind == GATE_UP:
        gate, up = tensor.chunk(2)
        return torch.cat([gate.chunk(size)[rank], up.chunk(size)[rank]]).clone()
    if kind == COLUMN:
        return tensor.chunk(size, 0)[rank].clone()
    if kind == ROW:
        return tensor.chunk(size, 1)[rank].clone()
    return tensor.clone()


def is_expert(name):
    return ".experts.local_experts." in name


def expert_of(name):
    """(the name with `local_experts.G.` cut out as `{}`, G) of a routed expert's tensor."""
    head, rest = name.split(".experts.local_experts.", 1)
    g, tail = rest.split(".", 1)
    return head, int(g), tail
