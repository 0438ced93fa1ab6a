#!/usr/bin/env python3
"""Hugging Face-side layouts of the tiny MoE models (make_moe_models.py): fp8, fused experts, DeepSeek's mp shards.

Run with Debian's python3-torch (/usr/bin/python3 make_hf_sources.py); the outputs are committed.

- deepseek_v3_fp8/: the DeepSeek-V3-like model as DeepSeek ships it (DSV3 README_WEIGHTS.md, "FP8
  Weight Documentation"): every linear make_moe_models.py marks fp8 as F8_E4M3 codes followed by
  its F32 `<name>_scale_inv` [out/B, in/B], the rest bf16 (router bias F32), config.json with
  quantization_config.weight_block_size [B, B] (B = FP8_BLOCK).  Dequantized it is
  deepseek_v3/model.safetensors, bit for bit (make_moe_models.py builds the model so).
- deepseek_v3_mp/: deepseek_v3_fp8 through DeepSeek-V3's inference/convert.py with
  --model-parallel 2 (deepseek-ai/DeepSeek-V3 @ 9b4e9788): names without `model.`, self_attn ->
  attn, mlp -> ffn, weight_scale_inv -> scale, e_score_correction_bias -> bias, then the module
  name by `mapping` (lines 11-30, 56-65); layer 61, here 5 (the MTP layer), dropped (line 53);
  routed experts whole, expert e in file e // (E / mp) only (lines 68-71); the others cut on the
  mapping's dim into mp equal parts, scales on the same dim (so in whole blocks), or copied whole
  when the dim is None (lines 72-76); saved as model{i}-mp{mp}.safetensors (line 81).  convert.py
  copies only *token* files (lines 83-85); the folder also holds config.json, which gives the
  block size (DeepSeek's inference/model.py fixes it at 128, line 15).
- deepseek_v3_fp8_fused/: deepseek_v3_fp8 with its experts fused the same way, codes and block
  scales alike (transformers' FP8 experts hold gate_up_proj_scale_inv [E, 2F/B, H/B]).
- deepseek_v3_fused/, qwen3_moe_fused/: the bf16 models with each MoE layer's routed experts fused
  as transformers >= 5 holds them and writes them with save_pretrained(save_original_format=False):
  `mlp.experts.gate_up_proj` [E, 2F, H] and `mlp.experts.down_proj` [E, H, F], from the per-expert
  tensors by MergeModulelist(dim=0) then Concatenate(dim=1) (transformers
  src/transformers/conversion_mapping.py @ 000c33fd, the qwen2_moe entry, copied to deepseek_v3 and
  qwen3_moe); the experts' forward takes gate, up = linear(x, gate_up_proj[e]).chunk(2, dim=-1)
  (src/transformers/integrations/moe.py @ 0261a467, lines 25-62, the experts class it documents;
  models with `experts_are_transposed`, [E, H, 2F], are not of this family).
"""
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import make_moe_models as models  # noqa: E402
from safetensors_file import Raw, save_safetensors  # noqa: E402

MP = 2

# inference/convert.py lines 11-30: Hugging Face module name -> (DeepSeek's, the dim cut over mp)
MAPPING = {
    "embed_tokens": ("embed", 0), "input_layernorm": ("attn_norm", None),
    "post_attention_layernorm": ("ffn_norm", None), "q_proj": ("wq", 0), "q_a_proj": ("wq_a", None),
    "q_a_layernorm": ("q_norm", None), "q_b_proj": ("wq_b", 0), "kv_a_proj_with_mqa": ("wkv_a", None),
    "kv_a_layernorm": ("kv_norm", None), "kv_b_proj": ("wkv_b", 0), "o_proj": ("wo", 1),
    "gate": ("gate", None), "gate_proj": ("w1", 0), "down_proj": ("w2", 1), "up_proj": ("w3", 0),
    "norm": ("norm", None), "lm_head": ("head", 0), "scale": ("scale", None),
}


def fp8_state():
    """The fp8 release: name -> tensor or Raw, each fp8 weight followed by its scale."""
    full = models.deepseek_v3_tensors()
    out = {}
    for name, t in full.items():
        if name in models.FP8:
            codes, scale = models.FP8[name]
            out[name] = Raw("F8_E4M3", codes.shape, codes.numpy().tobytes())
            out[name + "_scale_inv"] = scale
        else:
            out[name] = t
    return out


def convert_name(name):
    """convert.py lines 56-65."""
    if name.startswith("model."):
        name = name[len("model."):]
    name = name.replace("self_attn", "attn").replace("mlp", "ffn")
    name = name.replace("weight_scale_inv", "scale").replace("e_score_correction_bias", "bias")
    key = name.split(".")[-2]
    new_key, dim = MAPPING[key]
    return name.replace(key, new_key), dim


def narrow(t, dim, i):
    """param.narrow(dim, i * shard, shard) (convert.py lines 73-75), on a tensor or on fp8 codes."""
    if isinstance(t, Raw):
        codes = torch.frombuffer(bytearray(t.data), dtype=torch.uint8).reshape(t.shape)
        part = codes.narrow(dim, i * (codes.shape[dim] // MP), codes.shape[dim] // MP).contiguous()
        return Raw(t.dtype, part.shape, part.numpy().tobytes())
    assert t.shape[dim] % MP == 0, "convert.py asserts each cut dim divides by mp"
    return t.narrow(dim, i * (t.shape[dim] // MP), t.shape[dim] // MP).contiguous()


def write_mp(folder, state, config):
    layers = models.DEEPSEEK_V3["num_hidden_layers"]
    local = models.DEEPSEEK_V3["n_routed_experts"] // MP
    shards = [{} for _ in range(MP)]
    for name, t in state.items():
        if f"model.layers.{layers}." in name:   # convert.py line 53 (layer 61 in DeepSeek-V3)
            continue
        new, dim = convert_name(name)
        for i in range(MP):
            if "experts" in new and "shared_experts" not in new:
                e = int(new.split(".")[-3])
                if not i * local <= e < (i + 1) * local:
                    continue
                shards[i][new] = t
            elif dim is not None:
                shards[i][new] = narrow(t, dim, i)
            else:
                shards[i][new] = t
    os.makedirs(folder)
    for i in range(MP):
        save_safetensors(os.path.join(folder, f"model{i}-mp{MP}.safetensors"), shards[i].items())
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def fuse_layers(state, fuse):
    """state with each MoE layer's per-expert tensors replaced by fuse(prefix), at the first one's place."""
    out, done = {}, set()
    for name, t in state.items():
        head, sep, _ = name.partition(".mlp.experts.")
        if not sep:
            out[name] = t
        elif head not in done:
            done.add(head)
            out.update(fuse(head + ".mlp.experts."))
    return out


def stacked(get, p, experts, parts, suffix):
    """MergeModulelist(dim=0) of each part over the experts, then Concatenate(dim=1) of the parts."""
    return torch.cat([torch.stack([get(f"{p}{e}.{k}.{suffix}") for e in range(experts)]) for k in parts], dim=1)


FUSED = (("gate_up_proj", ("gate_proj", "up_proj")), ("down_proj", ("down_proj",)))


def fused(full, experts):
    """The MoE layers' routed experts as transformers >= 5 fuses them, in the place of the per-expert tensors."""
    return fuse_layers(full, lambda p: {p + n: stacked(full.get, p, experts, parts, "weight") for n, parts in FUSED})


def fused_fp8(state, experts):
    """The fp8 release with fused experts, as transformers' FP8 experts hold them: codes [E, 2F, H] and
    gate_up_proj_scale_inv [E, 2F/B, H/B] (gate's blocks then up's), down_proj and its scales alike."""
    def codes(name):
        return torch.frombuffer(bytearray(state[name].data), dtype=torch.uint8).reshape(state[name].shape)

    def fuse(p):
        out = {}
        for n, parts in FUSED:
            c = stacked(codes, p, experts, parts, "weight")
            out[p + n] = Raw("F8_E4M3", c.shape, c.contiguous().numpy().tobytes())
            out[p + n + "_scale_inv"] = stacked(state.get, p, experts, parts, "weight_scale_inv").contiguous()
        return out
    return fuse_layers(state, fuse)


def main():
    for name in ("deepseek_v3_fp8", "deepseek_v3_mp", "deepseek_v3_fused", "qwen3_moe_fused", "deepseek_v3_fp8_fused"):
        shutil.rmtree(os.path.join(HERE, name), ignore_errors=True)
    config = dict(models.deepseek_v3_config(), quantization_config={
        "activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
        "weight_block_size": [models.FP8_BLOCK, models.FP8_BLOCK]})
    state = fp8_state()
    models.write_model(os.path.join(HERE, "deepseek_v3_fp8"), state, config)
    write_mp(os.path.join(HERE, "deepseek_v3_mp"), state, config)
    models.write_model(os.path.join(HERE, "deepseek_v3_fp8_fused"),
                       fused_fp8(state, models.DEEPSEEK_V3["n_routed_experts"]), config)
    models.write_model(os.path.join(HERE, "deepseek_v3_fused"),
                       fused(models.deepseek_v3_tensors(), models.DEEPSEEK_V3["n_routed_experts"]),
                       models.deepseek_v3_config())
    models.write_model(os.path.join(HERE, "qwen3_moe_fused"),
                       fused(models.qwen3_moe_tensors(), models.QWEN3_MOE["num_experts"]), models.qwen3_moe_config())


if __name__ == "__main__":
    main()
