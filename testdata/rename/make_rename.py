#!/usr/bin/env python3
"""Writes testdata/rename/: one small Llama model, as Hugging Face names it and as Megatron-LM stores it.

Run once with Debian's python3-torch (/usr/bin/python3 make_rename.py); the output is committed.

- hf/: model.safetensors and config.json, the Hugging Face Llama model (bf16).
- megatron.safetensors: the same weights in Megatron-core names and fused layouts
  (linear_qkv as num_query_groups groups of [the group's query heads; k; v], linear_fc1 as
  [gate; up], embedding and output layer padded from vocab 60 to 64 rows with extra random
  rows), Transformer Engine fused norms in layer 0 and separate norms in layer 1, plus the
  non-weights a Megatron checkpoint holds (_extra_state, rotary inv_freq).  Its safetensors
  __metadata__ carries the megatron.* keys the Megatron reader records.
- megatron_legacy.safetensors: the same in legacy Megatron-LM names (language_model.encoder...).

The fused layouts are built here with torch.cat from the Megatron-LM layout description, so
the tests compare libckpt's splitting against an independent construction.
The safetensors files are written by hand from the format description.
"""
import json
import os
import struct

import torch

HIDDEN, FFN, HEADS, GROUPS, HEAD_DIM, LAYERS = 32, 48, 4, 2, 8, 2
VOCAB, PADDED_VOCAB, MAX_POS = 60, 64, 128
OUT = os.path.dirname(os.path.abspath(__file__))


def hf_tensors():
    g = torch.Generator().manual_seed(20261122)
    rand = lambda *shape: (torch.randn(*shape, generator=g) * 0.05).to(torch.bfloat16)
    t = {"model.embed_tokens.weight": rand(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1 + rand(HIDDEN).float()).to(torch.bfloat16)
        t[p + "self_attn.q_proj.weight"] = rand(HEADS * HEAD_DIM, HIDDEN)
        t[p + "self_attn.k_proj.weight"] = rand(GROUPS * HEAD_DIM, HIDDEN)
        t[p + "self_attn.v_proj.weight"] = rand(GROUPS * HEAD_DIM, HIDDEN)
        t[p + "self_attn.o_proj.weight"] = rand(HIDDEN, HEADS * HEAD_DIM)
        t[p + "post_attention_layernorm.weight"] = (1 + rand(HIDDEN).float()).to(torch.bfloat16)
        t[p + "mlp.gate_proj.weight"] = rand(FFN, HIDDEN)
        t[p + "mlp.up_proj.weight"] = rand(FFN, HIDDEN)
        t[p + "mlp.down_proj.weight"] = rand(HIDDEN, FFN)
    t["model.norm.weight"] = (1 + rand(HIDDEN).float()).to(torch.bfloat16)
    t["lm_head.weight"] = rand(VOCAB, HIDDEN)
    padding = rand(2 * (PADDED_VOCAB - VOCAB), HIDDEN)   # rows the conversion must cut off
    return t, padding


def fused_qkv(q, k, v):
    """Megatron's linear_qkv: for each query group, its HEADS/GROUPS query heads, then its k head, then its v head."""
    per = HEADS // GROUPS * HEAD_DIM
    parts = []
    for grp in range(GROUPS):
        parts += [q[grp * per:(grp + 1) * per], k[grp * HEAD_DIM:(grp + 1) * HEAD_DIM],
                  v[grp * HEAD_DIM:(grp + 1) * HEAD_DIM]]
    return torch.cat(parts)


def megatron_tensors(t, padding, legacy):
    pad = PADDED_VOCAB - VOCAB
    m = {}
    if legacy:
        m["language_model.embedding.word_embeddings.weight"] = torch.cat([t["model.embed_tokens.weight"], padding[:pad]])
    else:
        m["embedding.word_embeddings.weight"] = torch.cat([t["model.embed_tokens.weight"], padding[:pad]])
        m["rotary_pos_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    for i in range(LAYERS):
        h = f"model.layers.{i}."
        qkv = fused_qkv(t[h + "self_attn.q_proj.weight"], t[h + "self_attn.k_proj.weight"],
                        t[h + "self_attn.v_proj.weight"])
        fc1 = torch.cat([t[h + "mlp.gate_proj.weight"], t[h + "mlp.up_proj.weight"]])
        if legacy:
            p = f"language_model.encoder.layers.{i}."
            m[p + "input_layernorm.weight"] = t[h + "input_layernorm.weight"]
            m[p + "self_attention.query_key_value.weight"] = qkv
            m[p + "self_attention.dense.weight"] = t[h + "self_attn.o_proj.weight"]
            m[p + "post_attention_layernorm.weight"] = t[h + "post_attention_layernorm.weight"]
            m[p + "mlp.dense_h_to_4h.weight"] = fc1
            m[p + "mlp.dense_4h_to_h.weight"] = t[h + "mlp.down_proj.weight"]
            continue
        p = f"decoder.layers.{i}."
        if i == 0:   # Transformer Engine layers: norms fused into the next linear
            m[p + "self_attention.linear_qkv.layer_norm_weight"] = t[h + "input_layernorm.weight"]
            m[p + "mlp.linear_fc1.layer_norm_weight"] = t[h + "post_attention_layernorm.weight"]
        else:
            m[p + "input_layernorm.weight"] = t[h + "input_layernorm.weight"]
            m[p + "pre_mlp_layernorm.weight"] = t[h + "post_attention_layernorm.weight"]
        m[p + "self_attention.linear_qkv.weight"] = qkv
        m[p + "self_attention.linear_qkv._extra_state"] = torch.zeros(4, dtype=torch.uint8)
        m[p + "self_attention.linear_proj.weight"] = t[h + "self_attn.o_proj.weight"]
        m[p + "mlp.linear_fc1.weight"] = fc1
        m[p + "mlp.linear_fc2.weight"] = t[h + "mlp.down_proj.weight"]
    final = "language_model.encoder.final_layernorm.weight" if legacy else "decoder.final_layernorm.weight"
    m[final] = t["model.norm.weight"]
    output = "language_model.output_layer.weight" if legacy else "output_layer.weight"
    m[output] = torch.cat([t["lm_head.weight"], padding[pad:]])
    return m


def megatron_metadata():
    keys = {"num_layers": LAYERS, "hidden_size": HIDDEN, "ffn_hidden_size": FFN, "num_attention_heads": HEADS,
            "num_query_groups": GROUPS, "kv_channels": HEAD_DIM, "heads_per_group": HEADS // GROUPS,
            "padded_vocab_size": PADDED_VOCAB, "vocab_size": VOCAB, "max_position_embeddings": MAX_POS,
            "norm_epsilon": "1e-05", "rotary_base": 10000, "swiglu": "true"}
    return {"megatron." + k: str(v) for k, v in keys.items()}


DTYPES = {torch.bfloat16: ("BF16", torch.int16), torch.float32: ("F32", torch.int32), torch.uint8: ("U8", torch.uint8)}


def save_safetensors(path, named, metadata):
    header, blobs, offset = {"__metadata__": dict(metadata, format="pt")}, [], 0
    for name, tensor in named.items():
        dtype, raw_type = DTYPES[tensor.dtype]
        raw = tensor.contiguous().view(raw_type).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    t, padding = hf_tensors()
    os.makedirs(os.path.join(OUT, "hf"), exist_ok=True)
    save_safetensors(os.path.join(OUT, "hf", "model.safetensors"), t, {})
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_attention_heads": HEADS, "num_key_value_heads": GROUPS, "head_dim": HEAD_DIM,
        "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "max_position_embeddings": MAX_POS, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }
    with open(os.path.join(OUT, "hf", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_safetensors(os.path.join(OUT, "megatron.safetensors"), megatron_tensors(t, padding, False),
                     megatron_metadata())
    save_safetensors(os.path.join(OUT, "megatron_legacy.safetensors"), megatron_tensors(t, padding, True),
                     megatron_metadata())
    # legacy checkpoints written since Megatron-LM 4dc07152 (2023-09) name their norms input_norm,
    # post_attention_norm and final_norm (megatron/legacy/model/transformer.py, get_norm)
    newer = {k.replace(".input_layernorm.", ".input_norm.").replace(".post_attention_layernorm.",
                                                                        ".post_attention_norm.")
             .replace(".final_layernorm.", ".final_norm."): v for k, v in megatron_tensors(t, padding, True).items()}
    save_safetensors(os.path.join(OUT, "megatron_legacy_norms.safetensors"), newer, megatron_metadata())
    qwen3()


def qwen3():
    """The same shape as Qwen3 (Qwen3ForCausalLM): a per-head RMSNorm on q and k (self_attn.q_norm / k_norm, of
    head_dim), which Megatron-core calls self_attention.q_layernorm / k_layernorm (qk_layernorm)."""
    g = torch.Generator().manual_seed(20261205)
    t, padding = hf_tensors()
    for i in range(LAYERS):
        for n in ("q_norm", "k_norm"):
            t[f"model.layers.{i}.self_attn.{n}.weight"] = (1 + torch.randn(HEAD_DIM, generator=g) * 0.05).to(torch.bfloat16)
    os.makedirs(os.path.join(OUT, "hf_qwen3"), exist_ok=True)
    save_safetensors(os.path.join(OUT, "hf_qwen3", "model.safetensors"), t, {})
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_act": "silu", "hidden_size": HIDDEN,
        "intermediate_size": FFN, "num_attention_heads": HEADS, "num_key_value_heads": GROUPS, "head_dim": HEAD_DIM,
        "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "max_position_embeddings": MAX_POS, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "attention_bias": False, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }
    with open(os.path.join(OUT, "hf_qwen3", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    m = megatron_tensors(t, padding, False)
    for i in range(LAYERS):
        for hf_name, mg_name in (("q_norm", "q_layernorm"), ("k_norm", "k_layernorm")):
            m[f"decoder.layers.{i}.self_attention.{mg_name}.weight"] = t[f"model.layers.{i}.self_attn.{hf_name}.weight"]
    save_safetensors(os.path.join(OUT, "megatron_qwen3.safetensors"), m,
                     dict(megatron_metadata(), **{"megatron.qk_layernorm": "true"}))


if __name__ == "__main__":
    main()
