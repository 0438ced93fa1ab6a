#!/usr/bin/env python3
"""Fixtures and goldens for the loader-contract tests (tests/contracts.sh).

Run once with Debian's python3-torch (/usr/bin/python3 make_contracts.py); the
outputs are committed and the tests need no torch.

Three tiny Hugging Face checkpoints beside testdata/sample (Llama, bf16), each in
the layout its architecture's config.json declares:
  qwen2/        Qwen2ForCausalLM, float16, q/k/v biases, tied embeddings (no lm_head);
  qwen3_moe/    Qwen3MoeForCausalLM, bfloat16, q/k norms, 4 routed experts a layer,
                one dense layer (mlp_only_layers);
  deepseek_v3/  DeepseekV3ForCausalLM as DeepSeek publishes it: every linear of the
                decoder layers in float8 e4m3 with 16 x 16 block scales
                (weight_scale_inv, quantization_config.weight_block_size), MLA with a
                q LoRA, one dense layer then MoE layers with 4 routed experts, a shared
                expert, the router's float32 e_score_correction_bias, and the
                multi-token-prediction layer (model.layers.3, num_hidden_layers 3).

For each fixture (and the sample), NAME.golden.safetensors holds the int8 weights a
converter must write, made with torch's own operations: X.weight (I8) and
X.weight_scale (F32 [out, 1]) of every decoder-layer projection of the main layers,
quantized by msModelSlim's data-free int8 quantizer (testdata/quant/msmodelslim_rtn.py)
in the type the weight loads in: config.json's torch_dtype, an fp8 weight first
block-dequantized to bf16 as msModelSlim's convert_fp8_to_bf16.py does,
(w.float() * scale_of_its_block).to(bfloat16).  torch 1.13 has no float8: the e4m3 codes
are drawn as bytes and decoded from the
OCP definition (sign, 4 exponent bits of bias 7, 3 mantissa bits; 0x7F/0xFF are NaN
and never drawn).
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "quant"))

from msmodelslim_rtn import rtn_int8  # noqa: E402
from safetensors_file import Raw, save_safetensors  # noqa: E402

BLOCK = 16


def e4m3_table():
    t = []
    for c in range(256):
        e, m = (c >> 3) & 15, c & 7
        v = (1 + m / 8) * 2.0 ** (e - 7) if e else m / 8 * 2.0 ** -6
        t.append(-v if c & 0x80 else v)
    return torch.tensor(t, dtype=torch.float32)


E4M3 = e4m3_table()


class Model:
    """Tensors of one checkpoint in order, and its config."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.tensors = []
        self.fp8 = {}   # name -> (codes uint8 [out, in], scale_inv f32)

    def rand(self, *shape, scale=0.05):
        return torch.randn(*shape, generator=self.g) * scale

    def add(self, name, t):
        self.tensors.append((name, t))

    def norm(self, name, n, dtype):
        self.add(name, (1 + self.rand(n)).to(dtype))

    def linear(self, name, out, inp, dtype, fp8=False):
        if not fp8:
            self.add(name, self.rand(out, inp).to(dtype))
            return
        codes = torch.randint(0, 254, (out, inp), generator=self.g, dtype=torch.int32)
        codes = torch.where(codes >= 0x7F, codes + 1, codes).to(torch.uint8)   # skip the NaN code 0x7F
        so, si = -(-out // BLOCK), -(-inp // BLOCK)
        scale = (torch.rand(so, si, generator=self.g) * 2e-3 + 1e-4).to(torch.float32)
        self.fp8[name] = (codes, scale)
        self.add(name, Raw("F8_E4M3", (out, inp), codes.numpy().tobytes()))
        self.add(name + "_scale_inv", scale)

    def dequantized(self, name, dtype):
        codes, scale = self.fp8[name]
        out, inp = codes.shape
        w = E4M3[codes.long()]
        s = scale.repeat_interleave(BLOCK, dim=0).repeat_interleave(BLOCK, dim=1)[:out, :inp]
        return (w * s).to(dtype)


def mlp(m, p, inter, hidden, dtype, fp8=False):
    m.linear(p + "gate_proj.weight", inter, hidden, dtype, fp8)
    m.linear(p + "up_proj.weight", inter, hidden, dtype, fp8)
    m.linear(p + "down_proj.weight", hidden, inter, dtype, fp8)


def qwen2():
    h, inter, vocab, layers, heads, kv, hd = 64, 96, 128, 2, 4, 2, 16
    m, dt = Model(20261204), torch.float16
    m.add("model.embed_tokens.weight", m.rand(vocab, h).to(dt))
    for i in range(layers):
        p = "model.layers.%d." % i
        m.norm(p + "input_layernorm.weight", h, dt)
        for proj, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            m.linear(p + "self_attn.%s_proj.weight" % proj, rows, h, dt)
            m.add(p + "self_attn.%s_proj.bias" % proj, m.rand(rows).to(dt))
        m.linear(p + "self_attn.o_proj.weight", h, heads * hd, dt)
        m.norm(p + "post_attention_layernorm.weight", h, dt)
        mlp(m, p + "mlp.", inter, h, dt)
    m.norm("model.norm.weight", h, dt)
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": h,
              "intermediate_size": inter, "num_attention_heads": heads, "num_key_value_heads": kv,
              "num_hidden_layers": layers, "vocab_size": vocab, "rms_norm_eps": 1e-6, "torch_dtype": "float16",
              "tie_word_embeddings": True}
    return m, config


def qwen3_moe():
    h, inter, moe, vocab, layers, heads, kv, hd, experts = 64, 96, 32, 128, 2, 4, 2, 16, 4
    m, dt = Model(20261205), torch.bfloat16
    m.add("model.embed_tokens.weight", m.rand(vocab, h).to(dt))
    for i in range(layers):
        p = "model.layers.%d." % i
        m.norm(p + "input_layernorm.weight", h, dt)
        m.linear(p + "self_attn.q_proj.weight", heads * hd, h, dt)
        m.linear(p + "self_attn.k_proj.weight", kv * hd, h, dt)
        m.linear(p + "self_attn.v_proj.weight", kv * hd, h, dt)
        m.linear(p + "self_attn.o_proj.weight", h, heads * hd, dt)
        m.norm(p + "self_attn.q_norm.weight", hd, dt)
        m.norm(p + "self_attn.k_norm.weight", hd, dt)
        m.norm(p + "post_attention_layernorm.weight", h, dt)
        if i == 0:   # mlp_only_layers: [0]
            mlp(m, p + "mlp.", inter, h, dt)
        else:
            m.linear(p + "mlp.gate.weight", experts, h, dt)
            for e in range(experts):
                mlp(m, p + "mlp.experts.%d." % e, moe, h, dt)
    m.norm("model.norm.weight", h, dt)
    m.linear("lm_head.weight", vocab, h, dt)
    config = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": h,
              "intermediate_size": inter, "moe_intermediate_size": moe, "num_attention_heads": heads,
              "num_key_value_heads": kv, "head_dim": hd, "num_hidden_layers": layers, "num_experts": experts,
              "num_experts_per_tok": 2, "decoder_sparse_step": 1, "mlp_only_layers": [0], "vocab_size": vocab,
              "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16", "tie_word_embeddings": False}
    return m, config


def deepseek_v3():
    h, inter, moe, vocab, layers, heads, experts = 64, 96, 32, 128, 3, 4, 4
    q_lora, kv_lora, nope, rope, v = 48, 32, 16, 8, 16
    m, dt = Model(20261206), torch.bfloat16
    m.add("model.embed_tokens.weight", m.rand(vocab, h).to(dt))
    for i in range(layers + 1):   # the last is the multi-token-prediction layer
        p = "model.layers.%d." % i
        if i == layers:
            m.add(p + "embed_tokens.weight", m.rand(vocab, h).to(dt))
            m.norm(p + "enorm.weight", h, dt)
            m.norm(p + "hnorm.weight", h, dt)
            m.linear(p + "eh_proj.weight", h, 2 * h, dt)
        m.norm(p + "input_layernorm.weight", h, dt)
        m.linear(p + "self_attn.q_a_proj.weight", q_lora, h, dt, fp8=True)
        m.norm(p + "self_attn.q_a_layernorm.weight", q_lora, dt)
        m.linear(p + "self_attn.q_b_proj.weight", heads * (nope + rope), q_lora, dt, fp8=True)
        m.linear(p + "self_attn.kv_a_proj_with_mqa.weight", kv_lora + rope, h, dt, fp8=True)
        m.norm(p + "self_attn.kv_a_layernorm.weight", kv_lora, dt)
        m.linear(p + "self_attn.kv_b_proj.weight", heads * (nope + v), kv_lora, dt, fp8=True)
        m.linear(p + "self_attn.o_proj.weight", h, heads * v, dt, fp8=True)
        m.norm(p + "post_attention_layernorm.weight", h, dt)
        if i == 0:   # first_k_dense_replace: 1
            mlp(m, p + "mlp.", inter, h, dt, fp8=True)
        else:
            m.linear(p + "mlp.gate.weight", experts, h, dt)
            m.add(p + "mlp.gate.e_score_correction_bias", m.rand(experts, scale=0.5).to(torch.float32))
            for e in range(experts):
                mlp(m, p + "mlp.experts.%d." % e, moe, h, dt, fp8=True)
            mlp(m, p + "mlp.shared_experts.", moe, h, dt, fp8=True)
        if i == layers:
            m.norm(p + "shared_head.norm.weight", h, dt)
            m.add(p + "shared_head.head.weight", m.rand(vocab, h).to(dt))
    m.norm("model.norm.weight", h, dt)
    m.linear("lm_head.weight", vocab, h, dt)
    config = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": h,
              "intermediate_size": inter, "moe_intermediate_size": moe, "num_attention_heads": heads,
              "num_key_value_heads": heads, "num_hidden_layers": layers, "num_nextn_predict_layers": 1,
              "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_routed_experts": experts, "n_shared_experts": 1,
              "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "topk_method": "noaux_tc",
              "q_lora_rank": q_lora, "kv_lora_rank": kv_lora, "qk_nope_head_dim": nope, "qk_rope_head_dim": rope,
              "v_head_dim": v, "vocab_size": vocab, "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16",
              "tie_word_embeddings": False,
              "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [BLOCK, BLOCK]}}
    return m, config


QUANTIZED = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
             "self_attn.o_proj.weight", "self_attn.q_a_proj.weight", "self_attn.q_b_proj.weight",
             "self_attn.kv_a_proj_with_mqa.weight", "self_attn.kv_b_proj.weight", "gate_proj.weight",
             "up_proj.weight", "down_proj.weight")


def quantizable(name, layers):
    """Decoder-layer projections of the main layers (not the MTP layer, not the router)."""
    parts = name.split(".")
    if len(parts) < 4 or parts[:2] != ["model", "layers"] or int(parts[2]) >= layers:
        return False
    return any(name.endswith("." + s) for s in QUANTIZED)


def goldens(m, config):
    """The expected int8 weights and scales."""
    out = []
    load_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[config["torch_dtype"]]
    for name, t in m.tensors:
        if quantizable(name, config["num_hidden_layers"]):
            w = m.dequantized(name, torch.bfloat16).to(load_dtype) if name in m.fp8 else t.to(load_dtype)
            q, scale = rtn_int8(w)
            out.append((name, q))
            out.append((name + "_scale", scale))
    return out


def write(name, model, config):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    shard = "model-00001-of-00001.safetensors"
    save_safetensors(os.path.join(folder, shard), model.tensors, {"format": "pt"})
    total = sum(len(t.data) if isinstance(t, Raw) else t.numel() * t.element_size() for _, t in model.tensors)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": {n: shard for n, _ in model.tensors}}, f, indent=2)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_safetensors(os.path.join(HERE, name + ".golden.safetensors"), goldens(model, config))


def sample_goldens():
    """The bundled Llama sample (testdata/sample, bf16): its goldens, read from its own shards."""
    sys.path.insert(0, os.path.join(HERE, ".."))
    from make_sample import tensors   # the same generator, the same values
    m = Model(0)
    m.tensors = list(tensors().items())
    with open(os.path.join(HERE, "..", "sample", "config.json")) as f:
        config = json.load(f)
    save_safetensors(os.path.join(HERE, "sample.golden.safetensors"), goldens(m, config))


def main():
    for name, make in (("qwen2", qwen2), ("qwen3_moe", qwen3_moe), ("deepseek_v3", deepseek_v3)):
        model, config = make()
        write(name, model, config)
    sample_goldens()


if __name__ == "__main__":
    main()
