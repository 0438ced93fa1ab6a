#!/usr/bin/env python3
"""Megatron-LM legacy-layout fixtures for tests/test_megatron.c.

Run once with Debian's python3-torch (/usr/bin/python3 make_fixtures.py); the small
outputs are committed.

A small Hugging Face Llama model (bf16: hidden 32, 4 heads in 2 query groups of head dim 8,
SwiGLU ffn 48, 4 layers, vocab 60) is written as `hf/` (model.safetensors + config.json),
turned into Megatron-core names and fused layouts (linear_qkv as, per query group, its query
heads then k then v; linear_fc1 as [gate; up]; embedding and output layer padded to 64 rows),
written whole as the golden `full/core.safetensors`, then cut the way Megatron-LM's
tensor-parallel layers hold it (column-parallel on dim 0, with fc1 as [gate_r; up_r] per rank;
row-parallel on dim 1; norms replicated) and its pipeline stages (2 layers each, numbered
from 0 in each stage) into `tp2pp2/`: latest_checkpointed_iteration.txt and
iter_0000010/mp_rank_0T_00P/model_optim_rng.pt, each a torch.save of args (an
argparse.Namespace with Megatron's attribute names, its enums and torch dtype), checkpoint_version,
iteration, model, a small optimizer and rng_state.

Also: `legacy/` (another model, legacy names language_model.encoder..., nested as legacy
Megatron saved them, GELU, no GQA, TP=2, PP=1, a `release` folder) with its golden
`full/legacy.safetensors`, `bad_norm/` (a tiny TP=2 model whose rank 1 holds a different
final norm), and two single-file layouts the reader refuses: `uneven/` (args asking for an
uneven first pipeline stage) and `virtual/` (virtual pipeline stages, `model0`).  The Megatron enums are recreated under the module names real files reference.

Biases, each as a Hugging Face model (`hf_qkv_bias/`, `hf_biases/`) and its TP=2 Megatron layout:
`qkv_bias/` (add_qkv_bias: q, k and v biases only, a Qwen2 model) and `biases/` (add_bias_linear:
every linear layer's bias, Llama with attention_bias and mlp_bias).  Column-parallel biases are
cut on dim 0 like their weights (fc1's as [gate_r; up_r]); row-parallel ones are whole on each rank.
"""
import argparse
import enum
import json
import os
import shutil
import sys
import types
from collections import OrderedDict

import numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from safetensors_file import save_safetensors  # noqa: E402


def enum_in(module_name, name, members):
    """An Enum class pickled as `module_name.name`, as Megatron's own."""
    parts = module_name.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    cls = enum.Enum(name, members, module=module_name)
    setattr(sys.modules[module_name], name, cls)
    return cls


ModelType = enum_in("megatron.core.enums", "ModelType", {"encoder_or_decoder": 1, "retro_encoder": 2,
                                                         "retro_decoder": 3})
AttnBackend = enum_in("megatron.core.transformer.enums", "AttnBackend", {"flash": 1, "fused": 2, "unfused": 3,
                                                                         "local": 4, "auto": 5})

CORE = dict(hidden=32, heads=4, groups=2, head_dim=8, ffn=48, layers=4, vocab=60, padded=64, swiglu=True,
            legacy=False, tp=2, pp=2, seed=20261122)
LEGACY = dict(hidden=16, heads=2, groups=2, head_dim=8, ffn=24, layers=2, vocab=30, padded=32, swiglu=False,
              legacy=True, tp=2, pp=1, seed=7)
TINY = dict(hidden=8, heads=2, groups=2, head_dim=4, ffn=8, layers=1, vocab=6, padded=8, swiglu=True,
            legacy=False, tp=2, pp=1, seed=3)
QKV_BIAS = dict(hidden=16, heads=4, groups=2, head_dim=4, ffn=24, layers=2, vocab=30, padded=32, swiglu=True,
                legacy=False, tp=2, pp=1, seed=11, qkv_bias=True)
BIASES = dict(QKV_BIAS, seed=12, linear_bias=True)


def hf_tensors(c):
    g = torch.Generator().manual_seed(c["seed"])
    rand = lambda *shape: (torch.randn(*shape, generator=g) * 0.05).to(torch.bfloat16)
    norm = lambda: (1 + rand(c["hidden"]).float()).to(torch.bfloat16)
    h, q, kv = c["hidden"], c["heads"] * c["head_dim"], c["groups"] * c["head_dim"]
    t = {"model.embed_tokens.weight": rand(c["vocab"], h)}
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm()
        t[p + "self_attn.q_proj.weight"] = rand(q, h)
        t[p + "self_attn.k_proj.weight"] = rand(kv, h)
        t[p + "self_attn.v_proj.weight"] = rand(kv, h)
        t[p + "self_attn.o_proj.weight"] = rand(h, q)
        t[p + "post_attention_layernorm.weight"] = norm()
        if c["swiglu"]:
            t[p + "mlp.gate_proj.weight"] = rand(c["ffn"], h)
        t[p + "mlp.up_proj.weight"] = rand(c["ffn"], h)
        t[p + "mlp.down_proj.weight"] = rand(h, c["ffn"])
        if c.get("qkv_bias") or c.get("linear_bias"):
            t[p + "self_attn.q_proj.bias"] = rand(q)
            t[p + "self_attn.k_proj.bias"] = rand(kv)
            t[p + "self_attn.v_proj.bias"] = rand(kv)
        if c.get("linear_bias"):
            t[p + "self_attn.o_proj.bias"] = rand(h)
            t[p + "mlp.gate_proj.bias"] = rand(c["ffn"])
            t[p + "mlp.up_proj.bias"] = rand(c["ffn"])
            t[p + "mlp.down_proj.bias"] = rand(h)
    t["model.norm.weight"] = norm()
    t["lm_head.weight"] = rand(c["vocab"], h)
    pad = c["padded"] - c["vocab"]
    return t, rand(pad, h), rand(pad, h)


def fused_qkv(c, q, k, v):
    """Per query group: that group's query heads, then its k head, then its v head."""
    per, d = c["heads"] // c["groups"] * c["head_dim"], c["head_dim"]
    parts = []
    for grp in range(c["groups"]):
        parts += [q[grp * per:(grp + 1) * per], k[grp * d:(grp + 1) * d], v[grp * d:(grp + 1) * d]]
    return torch.cat(parts)


def megatron_names(c, t, pad_embed, pad_out):
    """The full (unsharded) Megatron state dict, in core or legacy names."""
    m = OrderedDict()
    emb = "language_model.embedding.word_embeddings.weight" if c["legacy"] else "embedding.word_embeddings.weight"
    m[emb] = torch.cat([t["model.embed_tokens.weight"], pad_embed])
    for i in range(c["layers"]):
        h = f"model.layers.{i}."
        qkv = fused_qkv(c, t[h + "self_attn.q_proj.weight"], t[h + "self_attn.k_proj.weight"],
                        t[h + "self_attn.v_proj.weight"])
        fc1 = t[h + "mlp.up_proj.weight"]
        if c["swiglu"]:
            fc1 = torch.cat([t[h + "mlp.gate_proj.weight"], fc1])
        if c["legacy"]:
            p = f"language_model.encoder.layers.{i}."
            m[p + "input_layernorm.weight"] = t[h + "input_layernorm.weight"]
            m[p + "self_attention.query_key_value.weight"] = qkv
            m[p + "self_attention.dense.weight"] = t[h + "self_attn.o_proj.weight"]
            m[p + "post_attention_layernorm.weight"] = t[h + "post_attention_layernorm.weight"]
            m[p + "mlp.dense_h_to_4h.weight"] = fc1
            m[p + "mlp.dense_4h_to_h.weight"] = t[h + "mlp.down_proj.weight"]
            continue
        p = f"decoder.layers.{i}."
        m[p + "self_attention.linear_qkv.layer_norm_weight"] = t[h + "input_layernorm.weight"]
        m[p + "self_attention.linear_qkv.weight"] = qkv
        m[p + "self_attention.linear_proj.weight"] = t[h + "self_attn.o_proj.weight"]
        m[p + "mlp.linear_fc1.layer_norm_weight"] = t[h + "post_attention_layernorm.weight"]
        m[p + "mlp.linear_fc1.weight"] = fc1
        m[p + "mlp.linear_fc2.weight"] = t[h + "mlp.down_proj.weight"]
        if h + "self_attn.q_proj.bias" in t:
            m[p + "self_attention.linear_qkv.bias"] = fused_qkv(c, t[h + "self_attn.q_proj.bias"],
                                                                t[h + "self_attn.k_proj.bias"],
                                                                t[h + "self_attn.v_proj.bias"])
        if h + "self_attn.o_proj.bias" in t:
            m[p + "self_attention.linear_proj.bias"] = t[h + "self_attn.o_proj.bias"]
            m[p + "mlp.linear_fc1.bias"] = torch.cat([t[h + "mlp.gate_proj.bias"], t[h + "mlp.up_proj.bias"]])
            m[p + "mlp.linear_fc2.bias"] = t[h + "mlp.down_proj.bias"]
    m["language_model.encoder.final_layernorm.weight" if c["legacy"] else "decoder.final_layernorm.weight"] = \
        t["model.norm.weight"]
    m["language_model.output_layer.weight" if c["legacy"] else "output_layer.weight"] = \
        torch.cat([t["lm_head.weight"], pad_out])
    return m


COLUMN = ("linear_qkv.weight", "query_key_value.weight", "word_embeddings.weight", "output_layer.weight",
          "linear_fc1.weight", "dense_h_to_4h.weight", "linear_qkv.bias", "linear_fc1.bias")
ROW = ("linear_proj.weight", "dense.weight", "linear_fc2.weight", "dense_4h_to_h.weight")


def tp_slice(c, name, tensor, r):
    """Rank r's part of a full tensor, as Megatron's parallel layers hold it."""
    tp = c["tp"]
    if c["swiglu"] and name.endswith(("linear_fc1.weight", "dense_h_to_4h.weight", "linear_fc1.bias")):
        gate, up = tensor.chunk(2)
        return torch.cat([gate.chunk(tp)[r], up.chunk(tp)[r]]).clone()
    if name.endswith(COLUMN):
        return tensor.chunk(tp, 0)[r].clone()
    if name.endswith(ROW):
        return tensor.chunk(tp, 1)[r].clone()
    return tensor.clone()


def stage_of(c, name):
    """(stage, name with the layer number local to that stage) for a full name."""
    per = c["layers"] // c["pp"]
    key = "encoder.layers." if c["legacy"] else "decoder.layers."
    if key in name:
        head, rest = name.split(key, 1)
        n, tail = rest.split(".", 1)
        return int(n) // per, f"{head}{key}{int(n) % per}.{tail}"
    if "embedding" in name:
        return 0, name
    return c["pp"] - 1, name


def nest_legacy(flat):
    """Legacy Megatron's state dict: language_model -> embedding/encoder/output_layer sub-dicts."""
    lm = OrderedDict()
    for name, tensor in flat.items():
        part, rest = name[len("language_model."):].split(".", 1)
        if part == "embedding":
            lm.setdefault("embedding", OrderedDict()).setdefault("word_embeddings", OrderedDict())["weight"] = tensor
        elif part == "output_layer":
            lm["output_layer"] = OrderedDict(weight=tensor)
        else:
            lm.setdefault(part, OrderedDict())[rest] = tensor
    return OrderedDict(language_model=lm)


def args_for(c):
    a = argparse.Namespace(
        num_layers=c["layers"], hidden_size=c["hidden"], ffn_hidden_size=c["ffn"], num_attention_heads=c["heads"],
        num_query_groups=c["groups"], group_query_attention=c["groups"] != c["heads"], kv_channels=c["head_dim"],
        swiglu=c["swiglu"], padded_vocab_size=c["padded"], vocab_size=c["vocab"], max_position_embeddings=128,
        norm_epsilon=1e-5, rotary_base=10000, position_embedding_type="rope", normalization="RMSNorm",
        tensor_model_parallel_size=c["tp"], pipeline_model_parallel_size=c["pp"],
        virtual_pipeline_model_parallel_size=None, num_layers_per_virtual_pipeline_stage=None,
        decoder_first_pipeline_num_layers=None, decoder_last_pipeline_num_layers=None,
        expert_model_parallel_size=1, untie_embeddings_and_output_weights=True,
        params_dtype=torch.bfloat16, bf16=True, fp16=False, model_type=ModelType.encoder_or_decoder,
        attention_backend=AttnBackend.auto, seed=1234, lr=3e-4, iteration=10, consumed_train_samples=640,
        data_path=["/data/tokens_text_document"], use_dist_ckpt=False, ckpt_format="torch",
        add_qkv_bias=bool(c.get("qkv_bias") or c.get("linear_bias")), add_bias_linear=bool(c.get("linear_bias")))
    return a


def rank_dir(c, t, p):
    return f"mp_rank_{t:02d}" if c["pp"] == 1 else f"mp_rank_{t:02d}_{p:03d}"


def write_ranks(c, full, folder, tag, edit=None, edit_args=None, key="model", nested_edit=None):
    """folder/tag/mp_rank_*/model_optim_rng.pt for every rank, and latest_checkpointed_iteration.txt."""
    shutil.rmtree(folder, ignore_errors=True)
    for p in range(c["pp"]):
        for r in range(c["tp"]):
            model = OrderedDict()
            for name, tensor in full.items():
                stage, local = stage_of(c, name)
                if stage == p:
                    model[local] = tp_slice(c, name, tensor, r)
                    if not c["legacy"] and local.endswith("linear_qkv.weight"):
                        model[local.replace(".weight", "._extra_state")] = torch.zeros(4, dtype=torch.uint8)
            if edit:
                edit(r, p, model)
            rng = numpy.random.RandomState(r).get_state()
            args = args_for(c)
            if edit_args:
                edit_args(args)
            nested = nest_legacy(model) if c["legacy"] else model
            if nested_edit:
                nested_edit(r, p, nested)
            state = {
                "args": args, "checkpoint_version": 3.0, "iteration": 10 if tag != "release" else 0,
                key: nested,
                "optimizer": {"optimizer": {"state": {0: {"step": 10, "exp_avg": torch.zeros(2)}},
                                            "param_groups": [{"lr": 3e-4, "params": [0]}]},
                              "fp32_from_fp16_params": [[]]},
                "rng_state": [{"np_rng_state": (rng[0], rng[1][:4], rng[2], rng[3], rng[4]),
                               "torch_rng_state": torch.zeros(8, dtype=torch.uint8)}],
            }
            d = os.path.join(folder, tag, rank_dir(c, r, p))
            os.makedirs(d)
            torch.save(state, os.path.join(d, "model_optim_rng.pt"))
    with open(os.path.join(folder, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("release" if tag == "release" else "10")


def hf_config(c):
    if c.get("qkv_bias") and not c.get("linear_bias"):
        arch = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    else:
        bias = bool(c.get("linear_bias"))
        arch = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": bias, "mlp_bias": bias}
    return {**arch, "hidden_act": "silu",
            "hidden_size": c["hidden"], "intermediate_size": c["ffn"], "num_attention_heads": c["heads"],
            "num_key_value_heads": c["groups"], "head_dim": c["head_dim"], "num_hidden_layers": c["layers"],
            "vocab_size": c["vocab"], "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def pooler_fixture():
    """A BERT-style legacy model's plain Linears, whole on every TP rank: language_model.pooler.dense
    (Pooler: "same pooler is run on all tensor parallel nodes", megatron/legacy/model/language_model.py:100-116),
    lm_head.dense and lm_head.layernorm, binary_head (torch.nn.Linear); Megatron's own loader takes them from
    rank 0 (tools/checkpoint/loader_base.py:361-386)."""
    c = dict(LEGACY, seed=13)
    full = megatron_names(c, *hf_tensors(c))
    g = torch.Generator().manual_seed(14)
    rand = lambda *shape: (torch.randn(*shape, generator=g) * 0.05).to(torch.bfloat16)
    h = c["hidden"]
    plain = OrderedDict([("language_model.pooler.dense.weight", rand(h, h)), ("language_model.pooler.dense.bias", rand(h)),
                         ("lm_head.dense.weight", rand(h, h)), ("lm_head.dense.bias", rand(h)),
                         ("lm_head.layernorm.weight", rand(h)), ("lm_head.layernorm.bias", rand(h)),
                         ("binary_head.weight", rand(2, h)), ("binary_head.bias", rand(2))])
    save_safetensors(os.path.join(HERE, "full", "pooler.safetensors"), list(full.items()) + list(plain.items()))

    def add_plain(r, p, model):
        lm = model["language_model"]
        lm["pooler"] = OrderedDict((k.split("pooler.", 1)[1], t.clone()) for k, t in plain.items() if "pooler" in k)
        model["lm_head"] = OrderedDict((k[len("lm_head."):], t.clone()) for k, t in plain.items()
                                       if k.startswith("lm_head."))
        model["binary_head"] = OrderedDict((k[len("binary_head."):], t.clone()) for k, t in plain.items()
                                           if k.startswith("binary_head."))
    write_ranks(c, full, os.path.join(HERE, "pooler"), "release", nested_edit=add_plain)


def main():
    os.makedirs(os.path.join(HERE, "full"), exist_ok=True)
    t, pad_embed, pad_out = hf_tensors(CORE)
    os.makedirs(os.path.join(HERE, "hf"), exist_ok=True)
    save_safetensors(os.path.join(HERE, "hf", "model.safetensors"), t.items())
    with open(os.path.join(HERE, "hf", "config.json"), "w") as f:
        json.dump(hf_config(CORE), f, indent=2)
    full = megatron_names(CORE, t, pad_embed, pad_out)
    save_safetensors(os.path.join(HERE, "full", "core.safetensors"), full.items())
    write_ranks(CORE, full, os.path.join(HERE, "tp2pp2"), "iter_0000010")

    full = megatron_names(LEGACY, *hf_tensors(LEGACY))
    save_safetensors(os.path.join(HERE, "full", "legacy.safetensors"), full.items())
    write_ranks(LEGACY, full, os.path.join(HERE, "legacy"), "release")

    def differ(r, p, model):
        if r == 1:
            model["decoder.final_layernorm.weight"][0] += 1
    tiny = megatron_names(TINY, *hf_tensors(TINY))
    write_ranks(TINY, tiny, os.path.join(HERE, "bad_norm"), "iter_0000010", differ)
    one = dict(TINY, tp=1)
    write_ranks(one, tiny, os.path.join(HERE, "uneven"), "iter_0000010",
                edit_args=lambda a: setattr(a, "decoder_first_pipeline_num_layers", 1))
    write_ranks(one, tiny, os.path.join(HERE, "virtual"), "iter_0000010", key="model0")

    pooler_fixture()

    for c, name in ((QKV_BIAS, "qkv_bias"), (BIASES, "biases")):
        t, pad_embed, pad_out = hf_tensors(c)
        os.makedirs(os.path.join(HERE, "hf_" + name), exist_ok=True)
        save_safetensors(os.path.join(HERE, "hf_" + name, "model.safetensors"), t.items())
        with open(os.path.join(HERE, "hf_" + name, "config.json"), "w") as f:
            json.dump(hf_config(c), f, indent=2)
        write_ranks(c, megatron_names(c, t, pad_embed, pad_out), os.path.join(HERE, name), "iter_0000010")


if __name__ == "__main__":
    main()
