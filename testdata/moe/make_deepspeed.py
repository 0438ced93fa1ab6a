#!/usr/bin/env python3
"""DeepSpeed MoE checkpoints of the tiny MoE models (make_moe_models.py), as DeepSpeed's engine saves them.

Run with Debian's python3-torch (/usr/bin/python3 make_deepspeed.py); the outputs are committed.
DeepSpeed is not installed: the files are laid out as deepspeedai/DeepSpeed @ edaa7221 saves them
(deepspeed/runtime/engine.py):

- The model is a Hugging Face-named model whose MoE blocks are DeepSpeed's native
  deepspeed.moe.layer.MoE: its router is deepspeed_moe.gate.wg (TopKGate, a Linear(H, E, bias=False),
  deepspeed/moe/sharded_moe.py:560), its experts deepspeed_moe.experts.deepspeed_experts.{i}, copies
  of the expert module given (deepspeed/moe/experts.py:13-18; layer.py:72-80), here Hugging Face's
  gate_proj/up_proj/down_proj MLP.  DeepSeek-V3's shared experts and router bias are not DeepSpeed's:
  the DeepSeek-like model wraps the MoE as mlp.moe beside mlp.shared_experts (a key holding "expert"
  inside an MoE module would be taken for a routed expert's and break the save: engine.py:4980-4998),
  and keeps e_score_correction_bias as a buffer of its TopKGate subclass (no "expert" in the name, so
  it stays in the model states).  The Qwen3-MoE-like model's mlp is the MoE itself.
- global_step10/mp_rank_00_model_states.pt (written by data-parallel rank 0, engine.py:5154-5216):
  `module` is the module state dict without any key holding "expert" inside an MoE module, except
  the router's moe.gate.wg.weight (_get_non_moe_state_dict, engine.py:4864-4895), beside
  param_shapes, buffer_names, ... (_common_checkpoint_state, engine.py:4897-4920) and num_experts.
- global_step10/layer_{L}_expert_{E}_mp_rank_00_model_states.pt (engine.py:4244-4257): L counts the
  MoE modules in named_modules() order (moe_layer_id, engine.py:4961-5021), so layer_0 is the first
  MoE layer (decoder layer 2 of the DeepSeek-like model); each file is a flat dict of one expert's
  tensors, keys with the global expert id (expp_rank * num_local_experts + local), each a
  .clone().detach() of the 16-bit module weight.  Written by the expert-data-parallel writers of each
  EP rank: over EP=2 ranks 0 and 1 each write their 4 local experts, every file once.
- param_shapes: one dict per optimizer group, the dense parameters, then the expert group holding
  rank 0's local experts under their local ids (split_params_into_different_moe_groups_for_optimizer,
  deepspeed/moe/utils.py:72-121, 'moe': True).
- bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt, ZeRO-2 over DP=4: the dense group's fp32 flat
  vector cut over the 4 ranks, the expert group's over its expert-data-parallel group only
  (partition_count [4, 2]; deepspeed/runtime/zero/stage_1_and_2.py:765-792), rank r holding part
  r // EP of EP rank r % EP's local experts (deepspeed/utils/groups.py:360-401); each group padded to
  a multiple of 2 x its partition count, as zero_to_fp32 reads it.  The fp32 masters are the bf16
  module weights widened, so both give the same model.

Folders written: deepseek_v3_deepspeed/ and qwen3_moe_deepspeed/ (latest -> global_step10), and
deepspeed_refused/misplaced_expert/ (a copy of the DeepSeek one whose layer_1_expert_3 file
holds expert 4's keys).
"""
import collections
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_moe_models as models  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "deepspeed"))
from make_fixtures import LossScaler, ZeroStageEnum  # noqa: E402  (DeepSpeed's classes under their names)

EP = 2
DP = 4   # data-parallel ranks; each EP group of 2 is replicated over EDP = DP / EP = 2
PREFIX = ".deepspeed_moe.experts.deepspeed_experts."


def deepspeed_names(full, moe_module):
    """The module state dict as the DeepSpeed-wrapped model names it: name -> tensor, and the MoE modules in order.

    moe_module(hf_mlp_prefix) is the MoE module's path for a layer's Hugging Face `...mlp.` prefix."""
    out, moes = collections.OrderedDict(), []
    for name, t in full.items():
        head, sep, tail = name.partition(".mlp.")
        if not sep or not (tail.startswith("experts.") or tail.startswith("gate.")):
            out[name] = t
            continue
        moe = moe_module(head + ".mlp")
        if moe not in moes:
            moes.append(moe)
        if tail.startswith("experts."):
            e, rest = tail[len("experts."):].split(".", 1)
            out[f"{moe}{PREFIX}{e}.{rest}"] = t
        elif tail == "gate.weight":
            out[f"{moe}.deepspeed_moe.gate.wg.weight"] = t
        else:   # the router bias: a buffer of the gate
            out[f"{moe}.deepspeed_moe.gate.{tail[len('gate.'):]}"] = t
    return out, moes


def is_expert(name, moes):
    """_get_non_moe_state_dict's test (engine.py:4884-4887): under an MoE module, holds 'expert', not the router."""
    return any(name.startswith(m + ".") for m in moes) and "expert" in name and "moe.gate.wg.weight" not in name


def partitions(tensors, count):
    """The fp32 flat vector of `tensors`, padded to a multiple of 2 x count, cut into `count` equal parts."""
    flat = torch.cat([t.float().reshape(-1) for t in tensors])
    padded = 2 * count * -(-flat.numel() // (2 * count))
    flat = torch.cat([flat, torch.zeros(padded - flat.numel())])
    return [flat[i * (padded // count):(i + 1) * (padded // count)].clone() for i in range(count)]


def optim_files(module, dense_params, rank0_experts, local):
    """Each rank's ZeRO-2 optimizer states: its part of the dense group and of its EP rank's expert group."""
    edp = DP // EP
    dense = partitions([module[n] for n in dense_params], DP)
    experts = []
    for ep in range(EP):   # EP rank ep's local expert i is global expert ep * local + i
        names = []
        for n in rank0_experts:
            i = int(n.split(PREFIX)[1].split(".")[0])
            names.append(n.replace(f"{PREFIX}{i}.", f"{PREFIX}{ep * local + i}."))
        experts.append(partitions([module[n] for n in names], edp))
    files = {}
    for r in range(DP):
        sd = {"zero_stage": ZeroStageEnum(2), "loss_scaler": LossScaler(1.0), "dynamic_loss_scale": False,
              "overflow": False, "clip_grad": 1.0,
              "base_optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-3}, {"lr": 1e-3, "moe": True}]},
              "single_partition_of_fp32_groups": [dense[r], experts[r % EP][r // EP]],
              "group_paddings": [0, 0], "partition_count": [DP, edp], "ds_version": "0.19.5"}
        files[f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt"] = {
            "optimizer_state_dict": sd, "ds_config": {"zero_optimization": {"stage": 2}}, "ds_version": "0.19.5"}
    return files


def write(folder, full, moe_module, experts, buffers, mutate=None, optimizer=True):
    module, moes = deepspeed_names(full, moe_module)
    tag = os.path.join(folder, "global_step10")
    os.makedirs(tag)
    with open(os.path.join(folder, "latest"), "w") as f:
        f.write("global_step10")
    dense = collections.OrderedDict((n, t) for n, t in module.items() if not is_expert(n, moes))
    local = experts // EP
    rank0_experts = collections.OrderedDict(   # rank 0's expert group: its local experts 0..local-1
        (n, t.shape) for n, t in module.items() if is_expert(n, moes) and int(n.split(PREFIX)[1].split(".")[0]) < local)
    params = collections.OrderedDict((n, t.shape) for n, t in dense.items() if n not in buffers)
    states = {
        "module": dense,
        "buffer_names": [n for n in dense if n in buffers],
        "optimizer": None,
        "param_shapes": [params, rank0_experts],
        "frozen_param_shapes": None,
        "shared_params": {},
        "frozen_param_fragments": None,
        "lr_scheduler": None,
        "sparse_tensor_module_names": set(),
        "skipped_steps": 0,
        "global_steps": 10,
        "global_samples": 80,
        "dp_world_size": 4,
        "mp_world_size": 1,
        "num_experts": [experts] * len(moes),
        "ds_config": {"train_batch_size": 8, "zero_optimization": {"stage": 2}, "bf16": {"enabled": True}},
        "ds_version": "0.19.5",
    }
    files = {"mp_rank_00_model_states.pt": states}
    if optimizer:
        files.update(optim_files(module, params, rank0_experts, local))
    for layer_id, moe in enumerate(moes):
        for e in range(experts):   # each EP rank writes its local experts under their global ids
            own = collections.OrderedDict((n, t.clone().detach()) for n, t in module.items()
                                          if n.startswith(f"{moe}{PREFIX}{e}."))
            files[f"layer_{layer_id}_expert_{e}_mp_rank_00_model_states.pt"] = own
    if mutate:
        mutate(files)
    for name, obj in files.items():
        torch.save(obj, os.path.join(tag, name))


def deepseek_module(mlp):
    return mlp + ".moe"


def qwen3_module(mlp):
    return mlp


def main():
    ds, qw = models.deepseek_v3_tensors(), models.qwen3_moe_tensors()
    ds_buffers = {n.replace("mlp.gate.", "mlp.moe.deepspeed_moe.gate.") for n in ds if n.endswith("correction_bias")}
    e_ds, e_qw = models.DEEPSEEK_V3["n_routed_experts"], models.QWEN3_MOE["num_experts"]
    for name in ("deepseek_v3_deepspeed", "qwen3_moe_deepspeed", "deepspeed_refused"):
        shutil.rmtree(os.path.join(HERE, name), ignore_errors=True)
    write(os.path.join(HERE, "deepseek_v3_deepspeed"), ds, deepseek_module, e_ds, ds_buffers)
    write(os.path.join(HERE, "qwen3_moe_deepspeed"), qw, qwen3_module, e_qw, set())

    def misplaced(files):   # a file whose keys are another expert's (the other defects are made by the tests)
        f = files["layer_1_expert_3_mp_rank_00_model_states.pt"]
        for k in list(f):
            f[k.replace(PREFIX + "3.", PREFIX + "4.")] = f.pop(k)

    write(os.path.join(HERE, "deepspeed_refused", "misplaced_expert"), ds, deepseek_module, e_ds, ds_buffers,
          misplaced, optimizer=False)   # read with the module weights only

if __name__ == "__main__":
    main()
