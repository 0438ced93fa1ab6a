#!/usr/bin/env python3
"""The two tiny Mixture-of-Experts models every MoE fixture of libckpt is cut from.

Run with Debian's python3-torch (/usr/bin/python3 make_moe_models.py [OUT]); OUT defaults to
this script's folder.  It writes, the same bytes on every run:

- OUT/deepseek_v3/: model.safetensors + config.json, a DeepSeek-V3-shaped model in the exact
  Hugging Face names of transformers' modeling_deepseek_v3.py and DeepSeek's README_WEIGHTS.md:
  5 decoder layers of which the first 2 are dense (first_k_dense_replace) and 3 are MoE,
  MLA attention with a q LoRA (q_a_proj, q_a_layernorm, q_b_proj, kv_a_proj_with_mqa,
  kv_a_layernorm, kv_b_proj, o_proj), 8 routed experts and 2 shared experts' worth of
  shared_experts, a router (mlp.gate.weight) with its F32 e_score_correction_bias, and one MTP
  layer as model.layers.5 (enorm, hnorm, eh_proj, shared_head.norm, a full MoE decoder layer,
  and embed_tokens / shared_head.head, which DeepSeek-V3 shares with the main model: copies).
- OUT/qwen3_moe/: the same for a Qwen3-MoE-shaped model (transformers' modular_qwen3_moe.py):
  3 layers, every one MoE (decoder_sparse_step 1), grouped-query attention with per-head q_norm
  and k_norm, 8 routed experts, no shared expert, a router without bias.

Every tensor is bf16 but the router bias (F32 with full mantissas, so that a lossy cast shows).
The DeepSeek-V3-like model's linears are the ones DeepSeek ships in fp8 (every attention and MLP
projection of the decoder and MTP layers; inference/model.py builds each Linear in float8_e4m3fn,
line 760; the router, embeddings, output layer, norms and eh_proj stay bf16): each holds exactly
the bf16 value of an fp8 e4m3 code times its block's F32 scale, (code * scale_inv).to(bfloat16) as
DeepSeek's fp8_cast_bf16.py and transformers dequantize, with FP8_BLOCK x FP8_BLOCK blocks
(DeepSeek's are 128 x 128; 4 here, so that every tensor has several and DeepSeek's mp=2 shards,
make_hf_sources.py, cut whole blocks) and scale = block amax / 448.  So the fp8 release and every
bf16 training layout of make_*.py are the same model, bit for bit (FP8 keeps the codes and scales).
The sizes are small but chosen so that mistakes show: no weight is square, the dense, expert
and shared-expert widths differ from each other and from every attention width, heads and
widths divide by 2 (tensor-parallel fixtures) and the 8 experts by 2 and 4 (expert-parallel),
and 5 layers (a prime, as DeepSeek-V3's 61) cannot be cut into even pipeline stages.

Framework fixtures import this module (tensors() of either model) and cut these full tensors
the way each framework shards them, so their expected values never come from libckpt.
The safetensors files are written by testdata/safetensors_file.py from the format description.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from safetensors_file import save_safetensors  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "contracts"))
import make_contracts  # noqa: E402

# DeepSeek-V3-like: the Hugging Face config names (configuration_deepseek_v3.py).
DEEPSEEK_V3 = {
    "vocab_size": 100, "hidden_size": 48, "intermediate_size": 56, "moe_intermediate_size": 20,
    "num_hidden_layers": 5, "first_k_dense_replace": 2, "num_nextn_predict_layers": 1,
    "num_attention_heads": 4, "num_key_value_heads": 4,
    "q_lora_rank": 24, "kv_lora_rank": 12, "qk_nope_head_dim": 12, "qk_rope_head_dim": 4, "v_head_dim": 8,
    "n_routed_experts": 8, "n_shared_experts": 2, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": True,
    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 256,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                     "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
}

# Qwen3-MoE-like: the Hugging Face config names (configuration_qwen3_moe.py).
QWEN3_MOE = {
    "vocab_size": 100, "hidden_size": 48, "intermediate_size": 56, "moe_intermediate_size": 24,
    "num_hidden_layers": 3, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": True,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 256,
}


FP8_BLOCK = 4
FP8 = {}   # DeepSeek-V3-like linear name -> (e4m3 codes uint8 [out, in], weight_scale_inv F32 [out/B, in/B])


def e4m3_table():
    """The value of every float8 e4m3fn code (contracts' table), its NaN codes 0x7F and 0xFF never chosen."""
    t = make_contracts.e4m3_table()
    t[0x7F] = t[0xFF] = float("inf")
    return t


E4M3 = e4m3_table()


def fp8_blocks(w):
    """w's e4m3 codes (nearest value, first on ties) and block scales amax / 448, as DeepSeek's blocks."""
    out, inp = w.shape
    b = FP8_BLOCK
    amax = w.float().abs().reshape(out // b, b, inp // b, b).amax(dim=(1, 3))
    scale = torch.where(amax > 0, amax / 448, torch.ones_like(amax))
    x = w.float() / scale.repeat_interleave(b, 0).repeat_interleave(b, 1)
    codes = (x.reshape(-1, 1) - E4M3.reshape(1, -1)).abs().argmin(dim=1).to(torch.uint8).reshape(out, inp)
    return codes, scale


def fp8_dequant(codes, scale):
    b = FP8_BLOCK
    return (E4M3[codes.long()] * scale.repeat_interleave(b, 0).repeat_interleave(b, 1)).to(torch.bfloat16)


class Random:
    """Deterministic values: weights ~ N(0, 0.05^2) and norms ~ 1 + N(0, 0.05^2) in bf16."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def weight(self, *shape):
        return (torch.randn(*shape, generator=self.g) * 0.05).to(torch.bfloat16)

    def norm(self, n):
        return (1 + torch.randn(n, generator=self.g) * 0.05).to(torch.bfloat16)

    def f32(self, n):
        return torch.randn(n, generator=self.g) * 0.01

    def fp8(self, name, *shape):
        """A weight as DeepSeek ships it: fp8 codes and block scales (kept in FP8), dequantized to bf16."""
        codes, scale = fp8_blocks(self.weight(*shape))
        FP8[name] = (codes, scale)
        return fp8_dequant(codes, scale)


def deepseek_v3_layer(t, r, p, c, moe):
    h, n = c["hidden_size"], c["num_attention_heads"]
    q_head = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]

    def fp8(name, *shape):
        t[p + name] = r.fp8(p + name, *shape)

    t[p + "input_layernorm.weight"] = r.norm(h)
    fp8("self_attn.q_a_proj.weight", c["q_lora_rank"], h)
    t[p + "self_attn.q_a_layernorm.weight"] = r.norm(c["q_lora_rank"])
    fp8("self_attn.q_b_proj.weight", n * q_head, c["q_lora_rank"])
    fp8("self_attn.kv_a_proj_with_mqa.weight", c["kv_lora_rank"] + c["qk_rope_head_dim"], h)
    t[p + "self_attn.kv_a_layernorm.weight"] = r.norm(c["kv_lora_rank"])
    fp8("self_attn.kv_b_proj.weight", n * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"])
    fp8("self_attn.o_proj.weight", h, n * c["v_head_dim"])
    t[p + "post_attention_layernorm.weight"] = r.norm(h)
    if not moe:
        swiglu(t, r, p + "mlp.", h, c["intermediate_size"], fp8=True)
        return
    e = c["n_routed_experts"]
    t[p + "mlp.gate.weight"] = r.weight(e, h)
    t[p + "mlp.gate.e_score_correction_bias"] = r.f32(e)
    for x in range(e):
        swiglu(t, r, p + f"mlp.experts.{x}.", h, c["moe_intermediate_size"], fp8=True)
    swiglu(t, r, p + "mlp.shared_experts.", h, c["moe_intermediate_size"] * c["n_shared_experts"], fp8=True)


def swiglu(t, r, p, hidden, width, fp8=False):
    make = (lambda name, *shape: r.fp8(name, *shape)) if fp8 else (lambda name, *shape: r.weight(*shape))
    t[p + "gate_proj.weight"] = make(p + "gate_proj.weight", width, hidden)
    t[p + "up_proj.weight"] = make(p + "up_proj.weight", width, hidden)
    t[p + "down_proj.weight"] = make(p + "down_proj.weight", hidden, width)


def deepseek_v3_tensors():
    """The DeepSeek-V3-like model's tensors, name -> tensor, in module order."""
    FP8.clear()
    c, r, t = DEEPSEEK_V3, Random(20261203), {}
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    t["model.embed_tokens.weight"] = r.weight(c["vocab_size"], h)
    for i in range(layers):
        deepseek_v3_layer(t, r, f"model.layers.{i}.", c, i >= c["first_k_dense_replace"])
    t["model.norm.weight"] = r.norm(h)
    t["lm_head.weight"] = r.weight(c["vocab_size"], h)
    for k in range(c["num_nextn_predict_layers"]):
        p = f"model.layers.{layers + k}."
        t[p + "embed_tokens.weight"] = t["model.embed_tokens.weight"].clone()
        t[p + "enorm.weight"] = r.norm(h)
        t[p + "hnorm.weight"] = r.norm(h)
        t[p + "eh_proj.weight"] = r.weight(h, 2 * h)
        deepseek_v3_layer(t, r, p, c, True)
        t[p + "shared_head.norm.weight"] = r.norm(h)
        t[p + "shared_head.head.weight"] = t["lm_head.weight"].clone()
    return t


def qwen3_moe_tensors():
    """The Qwen3-MoE-like model's tensors, name -> tensor, in module order."""
    c, r, t = QWEN3_MOE, Random(20261204), {}
    h, d = c["hidden_size"], c["head_dim"]
    t["model.embed_tokens.weight"] = r.weight(c["vocab_size"], h)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = r.norm(h)
        t[p + "self_attn.q_proj.weight"] = r.weight(c["num_attention_heads"] * d, h)
        t[p + "self_attn.k_proj.weight"] = r.weight(c["num_key_value_heads"] * d, h)
        t[p + "self_attn.v_proj.weight"] = r.weight(c["num_key_value_heads"] * d, h)
        t[p + "self_attn.o_proj.weight"] = r.weight(h, c["num_attention_heads"] * d)
        t[p + "self_attn.q_norm.weight"] = r.norm(d)
        t[p + "self_attn.k_norm.weight"] = r.norm(d)
        t[p + "post_attention_layernorm.weight"] = r.norm(h)
        t[p + "mlp.gate.weight"] = r.weight(c["num_experts"], h)
        for x in range(c["num_experts"]):
            swiglu(t, r, p + f"mlp.experts.{x}.", h, c["moe_intermediate_size"])
    t["model.norm.weight"] = r.norm(h)
    t["lm_head.weight"] = r.weight(c["vocab_size"], h)
    return t


def deepseek_v3_config():
    return dict({"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_act": "silu",
                 "attention_bias": False, "attention_dropout": 0.0, "moe_layer_freq": 1, "ep_size": 1,
                 "initializer_range": 0.02, "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": False,
                 "torch_dtype": "bfloat16", "use_cache": True}, **DEEPSEEK_V3)


def qwen3_moe_config():
    return dict({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_act": "silu",
                 "attention_bias": False, "attention_dropout": 0.0, "initializer_range": 0.02,
                 "output_router_logits": False, "router_aux_loss_coef": 0.001, "use_sliding_window": False,
                 "sliding_window": None, "max_window_layers": QWEN3_MOE["num_hidden_layers"],
                 "bos_token_id": 151643, "eos_token_id": 151645, "tie_word_embeddings": False,
                 "torch_dtype": "bfloat16", "use_cache": True}, **QWEN3_MOE)


MODELS = {"deepseek_v3": (deepseek_v3_tensors, deepseek_v3_config),
          "qwen3_moe": (qwen3_moe_tensors, qwen3_moe_config)}


def write_model(folder, tensors, config):
    os.makedirs(folder, exist_ok=True)
    save_safetensors(os.path.join(folder, "model.safetensors"), tensors.items(), {"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name, (tensors, config) in MODELS.items():
        write_model(os.path.join(out, name), tensors(), config())


if __name__ == "__main__":
    main()
