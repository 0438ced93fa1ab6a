#!/usr/bin/env python3
"""Megatron-core torch_dist checkpoints (and a NeMo 2 folder) of the tiny MoE models.

Run with Debian's python3-torch (/usr/bin/python3 make_torch_dist.py); the outputs are committed.
torch 1.13 cannot write DCP folders under Python 3.11, so they are written the way
FileSystemWriter writes them, with testdata/dcp/make_fixtures.py's DCP records (each chunk a
torch.save at a byte range of a __R_0.distcp file, `.metadata` a pickle of Metadata).

The full tensors come from megatron_moe.py; the chunks are what each rank's ShardedTensors
give, following NVIDIA/Megatron-LM @ d98e8a64:
- Global keys and shapes are the unsharded model's, whatever TP, EP and ETP were; a chunk is one
  rank's shard at its offset.  Column-parallel weights chunk dim 0, row-parallel ones dim 1,
  replicated tensors are one chunk (written by replica 0).
- SwiGLU fc1 (dense, shared experts, each routed expert): rank r's gate half at offset r and its
  up half at offset TP + r, in units of F/TP (megatron/core/transformer/mlp.py:427-495,
  apply_swiglu_sharded_factory): 2 chunks per rank.
- Routed experts: SequentialMLP renames local_experts.{i}. to experts. and prepends an expert axis
  at the global index ep * E/EP + i (megatron/core/transformer/moe/experts.py:1526-1567), so a
  layer's experts are one key ...mlp.experts.experts.linear_fc1.weight [E, 2F, H], cut over the
  expert-TP ranks like a dense MLP.
- Layers are stacked on a leading [L] axis unless the block is non-homogeneous: a moe_layer_freq
  list (DeepSeek's dense first layers) keeps per-layer keys decoder.layers.N.* (transformer_block.py:774-848);
  Qwen3-MoE (every layer MoE) is stacked, experts as [L, E, 2F, H].  MTP keys are per layer and
  keep the name transformer_layer (multi_token_prediction.py:1755-1765, 2142-2170).
- Non-tensor state: ShardedObjects as bytes entries `key/shard_<offsets>_<shape>`
  (dist_checkpointing/mapping.py:361-367), e.g. Transformer Engine's _extra_state.  From core
  0.19 the common state (args, iteration, content_metadata) is not common.pt but the bytes entry
  common_state/shard_0_1 = torch.save([common]) (dist_checkpointing/serialization.py:424-437,
  strategies/torch.py:317-321), and metadata.json loses common_backend (core.py:22-34).

Folders written:
  deepseek_v3_dist/  DeepSeek-V3-like, TP=2 EP=4 ETP=1, per-layer keys, core >= 0.19 (common_state, no common.pt)
  qwen3_moe_dist/    Qwen3-MoE-like, TP=2 EP=2 ETP=2, stacked keys, core 0.14 (common.pt)
  qwen3_moe_nemo2/   NeMo 2: weights/ = qwen3_moe_dist with every key under `module.`, and context/model.yaml
  refused/singleton_flag/, refused/singleton_keys/: one key per expert (singleton_local_shards), by flag or by key
"""
import argparse
import importlib.util
import io
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import megatron_moe as mg  # noqa: E402
import make_moe_models as mm  # noqa: E402

_spec = importlib.util.spec_from_file_location("dcp_fixtures", os.path.join(os.path.dirname(HERE), "dcp",
                                                                             "make_fixtures.py"))
dcp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dcp)


def stacked_name(name):
    """decoder.layers.N.rest -> (decoder.layers.rest, N), as a homogeneous block's sharded state dict names it."""
    head, rest = name.split("decoder.layers.", 1)
    n, tail = rest.split(".", 1)
    return f"{head}decoder.layers.{tail}", int(n)


def expert_name(name):
    """...mlp.experts.local_experts.G.rest -> (...mlp.experts.experts.rest, G)."""
    head, g, tail = mg.expert_of(name)
    return f"{head}.experts.experts.{tail}", g


def chunks(kind, shape, tp, lead):
    """(offsets, sizes, tp rank) of each chunk of a tensor of `shape` behind `lead` leading unit axes."""
    out = []
    if kind == mg.GATE_UP:
        half = shape[0] // 2
        step = half // tp
        for r in range(tp):
            out.append(((r * step, 0), (step, shape[1]), r))
            out.append(((half + r * step, 0), (step, shape[1]), r))
    elif kind == mg.COLUMN:
        step = shape[0] // tp
        out = [((r * step,) + (0,) * (len(shape) - 1), (step,) + tuple(shape[1:]), r) for r in range(tp)]
    elif kind == mg.ROW:
        step = shape[1] // tp
        out = [((0, r * step), (shape[0], step), r) for r in range(tp)]
    else:
        out = [((0,) * len(shape), tuple(shape), 0)]
    return [((0,) * lead + o, (1,) * lead + s, r) for o, s, r in out]


def dist_tensors(full, tp, ep, etp, experts, stacked):
    """The DCP entries {key: full tensor} and the chunk plan [(key, offsets, sizes, file)]."""
    entries, plan = {}, []
    local_count = experts // ep
    grouped = {}
    for name, tensor in full.items():
        key, index = name, []
        is_expert = mg.is_expert(name)
        if is_expert:
            key, g = expert_name(key)
            index = [g]
        if stacked and key.startswith("decoder.layers."):
            key, layer = stacked_name(key)
            index = [layer] + index
        grouped.setdefault(key, []).append((tuple(index), name, tensor))
    for key, parts in grouped.items():
        first = parts[0][2]
        lead = len(parts[0][0])
        if lead:
            dims = [max(p[0][d] for p in parts) + 1 for d in range(lead)]
            whole = torch.empty(dims + list(first.shape), dtype=first.dtype)
            for index, _, tensor in parts:
                whole[index] = tensor
        else:
            whole = first
        entries[key] = whole
        name = parts[0][1]
        kind = mg.split_kind(name.split(".experts.local_experts.")[-1] if mg.is_expert(name) else name, False)
        size = etp if mg.is_expert(name) else tp
        for index, name, tensor in parts:
            for offsets, sizes, r in chunks(kind, tensor.shape, size, 0):
                if mg.is_expert(name):
                    g = index[-1]
                    writer = r + etp * (g // local_count)   # the rank holding expert-TP shard r of EP rank g // E_l
                else:
                    writer = r
                plan.append((key, tuple(index) + offsets, (1,) * len(index) + sizes, f"__{writer}_0.distcp"))
    return entries, plan


def common_state(args):
    return {"args": args, "checkpoint_version": 3.0, "iteration": 10, "num_floating_point_operations_so_far": 0,
            "content_metadata": {"singleton_local_shards": False, "distrib_optim_sharding_type": "dp_reshardable",
                                 "chained_optim_avoid_prefix": True}}


def write_dist(dest, full, args, tp, ep, etp, stacked, common_in_dcp, prefix=""):
    ns = dcp.classes(dcp.NEW)
    entries, plan = dist_tensors(full, tp, ep, etp, args.num_experts, stacked)
    entries = {prefix + k: v for k, v in entries.items()}
    plan = [(prefix + k, o, s, f) for k, o, s, f in plan]
    extra = [(prefix + "decoder.layers.0.self_attention.linear_proj._extra_state/shard_0_1",
              dcp.torch_save_bytes(None), "__0_0.distcp")]
    first_moe = next(k for k in entries if "experts.experts.linear_fc1.weight" in k)
    extra.append((first_moe.replace(".weight", "._extra_state") + "/shard_0.0_1.1", dcp.torch_save_bytes(None),
                  "__1_0.distcp"))
    if common_in_dcp:
        extra.append(("common_state/shard_0_1", dcp.torch_save_bytes([common_state(args)]), "__0_0.distcp"))
    opt = "optimizer.state.exp_avg." + prefix + "decoder.final_layernorm.weight"
    entries[opt] = torch.zeros(args.hidden_size)
    plan.append((opt, (0,), (args.hidden_size,), "__0_0.distcp"))
    shutil.rmtree(dest, ignore_errors=True)
    sdm, storage = dcp.write_folder(dest, ns, entries, plan, extra)
    with open(os.path.join(dest, ".metadata"), "wb") as f:
        f.write(dcp.metadata_bytes(ns, sdm, storage, {k: (k,) for k in sdm}, {"mcore_data": {k: {} for k in sdm}}))
    backend = {"sharded_backend": "torch_dist", "sharded_backend_version": 1}
    if not common_in_dcp:
        backend.update(common_backend="torch", common_backend_version=1)
        torch.save(common_state(args), os.path.join(dest, "common.pt"))
    with open(os.path.join(dest, "metadata.json"), "w") as f:
        json.dump(backend, f)


# context/model.yaml as NeMo 2 writes a Qwen3-MoE model (Hydra style, Megatron TransformerConfig field names)
def nemo_model_yaml():
    c = mm.QWEN3_MOE
    return f"""_target_: nemo.collections.llm.gpt.model.qwen3.Qwen3Model
config:
  _target_: nemo.collections.llm.gpt.model.qwen3.Qwen3MoEConfig30B_A3B
  activation_func:
    _call_: false
    _target_: torch.nn.functional.silu
  add_bias_linear: false
  add_qkv_bias: false
  ffn_hidden_size: {c["intermediate_size"]}
  gated_linear_unit: true
  hidden_size: {c["hidden_size"]}
  kv_channels: {c["head_dim"]}
  layernorm_epsilon: {c["rms_norm_eps"]}
  moe_ffn_hidden_size: {c["moe_intermediate_size"]}
  moe_grouped_gemm: true
  moe_layer_freq: 1
  moe_router_load_balancing_type: aux_loss
  moe_router_topk: {c["num_experts_per_tok"]}
  moe_router_score_function: softmax
  normalization: RMSNorm
  num_attention_heads: {c["num_attention_heads"]}
  num_layers: {c["num_hidden_layers"]}
  num_moe_experts: {c["num_experts"]}
  num_query_groups: {c["num_key_value_heads"]}
  qk_layernorm: true
  rotary_base: {int(c["rope_theta"])}
  seq_length: {c["max_position_embeddings"]}
  share_embeddings_and_output_weights: false
  vocab_size: {c["vocab_size"]}
tokenizer:
  _target_: nemo.collections.common.tokenizers.huggingface.auto_tokenizer.AutoTokenizer
"""


def write_singleton(dest, flag):
    """singleton_local_shards (experts.py:1540-1545, mlp.py:464-469): one key per expert and GLU half, recorded
    in content_metadata; Megatron's training saves with it False (checkpointing.py:560).  Refused, by the flag
    (common.pt) or by the key alone."""
    ns = dcp.classes(dcp.NEW)
    key = "decoder.layers.0.mlp.experts.experts.3.linear_fc1.weight_w"
    entries = {key: torch.zeros(4, 8, dtype=torch.bfloat16)}
    shutil.rmtree(dest, ignore_errors=True)
    sdm, storage = dcp.write_folder(dest, ns, entries, [(key, (0, 0), (4, 8), "__0_0.distcp")], [])
    with open(os.path.join(dest, ".metadata"), "wb") as f:
        f.write(dcp.metadata_bytes(ns, sdm, storage))
    with open(os.path.join(dest, "metadata.json"), "w") as f:
        json.dump({"sharded_backend": "torch_dist", "sharded_backend_version": 1, "common_backend": "torch",
                   "common_backend_version": 1}, f)
    common = {"checkpoint_version": 3.0, "iteration": 10, "content_metadata": {"singleton_local_shards": flag}}
    torch.save(common, os.path.join(dest, "common.pt"))


def main():
    full, _ = mg.deepseek_v3_megatron()
    args = mg.namespace(mg.deepseek_v3_args(ckpt_format="torch_dist"), 2, 1, 4, 1, ckpt_format="torch_dist")
    write_dist(os.path.join(HERE, "deepseek_v3_dist"), full, args, 2, 4, 1, stacked=False, common_in_dcp=True)

    full, _ = mg.qwen3_moe_megatron()
    args = mg.namespace(mg.qwen3_moe_args(), 2, 1, 2, 2, ckpt_format="torch_dist")
    write_dist(os.path.join(HERE, "qwen3_moe_dist"), full, args, 2, 2, 2, stacked=True, common_in_dcp=False)
    nemo = os.path.join(HERE, "qwen3_moe_nemo2")
    shutil.rmtree(nemo, ignore_errors=True)
    write_dist(os.path.join(nemo, "weights"), full, args, 2, 2, 2, stacked=True, common_in_dcp=False,
               prefix="module.")
    # NeMo 2 keeps the model's shape in context/, and no Megatron args
    torch.save({"checkpoint_version": 3.0, "global_step": 10}, os.path.join(nemo, "weights", "common.pt"))
    os.makedirs(os.path.join(nemo, "context"))
    with open(os.path.join(nemo, "context", "model.yaml"), "w") as f:
        f.write(nemo_model_yaml())
    write_singleton(os.path.join(HERE, "refused", "singleton_flag"), True)
    write_singleton(os.path.join(HERE, "refused", "singleton_keys"), False)


if __name__ == "__main__":
    main()
