#!/usr/bin/env python3
"""Writes testdata/sample/: a tiny Llama-shaped bf16 model in two safetensors shards.

Run once with Debian's python3-torch (/usr/bin/python3 make_sample.py); the output is
committed, so nothing needs Python at build or test time.  Dimensions are odd on
purpose (intermediate 170, vocabulary 317) so that Ascend NZ tiling needs padding.
The safetensors files are written by hand from the format description, so that this
script does not depend on the safetensors package.
"""
import json
import os

import torch

from safetensors_file import save_safetensors

HIDDEN, INTERMEDIATE, VOCAB, LAYERS = 64, 170, 317, 2
HEADS, KV_HEADS, HEAD_DIM = 4, 2, 16
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample")


def tensors():
    g = torch.Generator().manual_seed(20261122)
    rand = lambda *shape: (torch.randn(*shape, generator=g) * 0.05).to(torch.bfloat16)
    t = {"model.embed_tokens.weight": rand(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1 + rand(HIDDEN).float()).to(torch.bfloat16)
        t[p + "self_attn.q_proj.weight"] = rand(HEADS * HEAD_DIM, HIDDEN)
        t[p + "self_attn.k_proj.weight"] = rand(KV_HEADS * HEAD_DIM, HIDDEN)
        t[p + "self_attn.v_proj.weight"] = rand(KV_HEADS * HEAD_DIM, HIDDEN)
        t[p + "self_attn.o_proj.weight"] = rand(HIDDEN, HEADS * HEAD_DIM)
        t[p + "post_attention_layernorm.weight"] = (1 + rand(HIDDEN).float()).to(torch.bfloat16)
        t[p + "mlp.gate_proj.weight"] = rand(INTERMEDIATE, HIDDEN)
        t[p + "mlp.up_proj.weight"] = rand(INTERMEDIATE, HIDDEN)
        t[p + "mlp.down_proj.weight"] = rand(HIDDEN, INTERMEDIATE)
    t["model.norm.weight"] = (1 + rand(HIDDEN).float()).to(torch.bfloat16)
    t["lm_head.weight"] = rand(VOCAB, HIDDEN)
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    t = tensors()
    names = list(t)
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_safetensors(os.path.join(OUT, fname), [(n, t[n]) for n in shard], {"format": "pt"})
        weight_map.update({n: fname for n in shard})
    total = sum(v.numel() * 2 for v in t.values())
    with open(os.path.join(OUT, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(OUT, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)
    # golden values for tests: a few elements read back through torch
    golden = {n: [float(v) for v in t[n].flatten()[:4].float()] for n in ("model.embed_tokens.weight", "lm_head.weight")}
    with open(os.path.join(OUT, "..", "sample_golden.json"), "w") as f:
        json.dump(golden, f, indent=2)


if __name__ == "__main__":
    main()
