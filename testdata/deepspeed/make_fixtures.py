#!/usr/bin/env python3
"""DeepSpeed ZeRO checkpoint folders and their goldens for tests/test_deepspeed.c.

Run once with Debian's python3-torch (/usr/bin/python3 make_fixtures.py); the small
outputs are committed.  DeepSpeed itself is not installed, so the files are laid out as
DeepSpeed's engine and ZeRO optimizers save them and as zero_to_fp32.py reads them, and
the DeepSpeed classes real files pickle (ZeroStageEnum, the loss scalers, fragment_address)
are recreated below under their real module names.

The model: a frozen embedding, two Linear layers of odd sizes in two parameter groups (so
every partition cuts a tensor in the middle), an output layer tied to fc1, and a buffer.
fp32 master weights are the truth; the module holds their bf16 copies.

  zero2/   latest -> global_step7/, ZeRO-2 over 3 data-parallel ranks: each group flattened,
           padded to a multiple of 2 * world, cut in 3 equal partitions
  zero1/   the same for ZeRO-1 over 2 ranks (the same file layout; other padding and cuts)
  zero3/   latest -> global_step9/, ZeRO-3 over 3 ranks: every parameter cut in 3 pieces
           of ceil(numel / 3) elements, the last padded
  bad_*/   defective copies of zero2 for the refusals
  golden_fp32.safetensors    what zero_to_fp32 gives (buffers and frozen parameters as stored)
  golden_module.safetensors  the module weights of the ZeRO-2 model states
"""
import collections
import dataclasses
import enum
import math
import os
import shutil
import sys
import types

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from safetensors_file import save_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORLD = 3


# ---- the DeepSpeed classes checkpoints pickle, under their real module names ----

def fake_module(name):
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
    return sys.modules[name]


config = fake_module("deepspeed.runtime.zero.config")


class ZeroStageEnum(int, enum.Enum):
    disabled = 0
    optimizer_states = 1
    gradients = 2
    weights = 3


ZeroStageEnum.__module__ = config.__name__
config.ZeroStageEnum = ZeroStageEnum

loss_scaler = fake_module("deepspeed.runtime.fp16.loss_scaler")


class LossScaler:
    def __init__(self, scale):
        self.cur_scale = scale
        self.dynamic = False


class DynamicLossScaler:
    def __init__(self):
        self.cur_scale = 65536.0
        self.cur_iter = 9
        self.last_overflow_iter = -1
        self.scale_factor = 2.0
        self.scale_window = 1000
        self.min_scale = 1
        self.delayed_shift = 1
        self.cur_hysteresis = 1
        self.consecutive_hysteresis = False
        self.raise_error_at_min_scale = True
        self.dynamic = True
        self.dtype = torch.float16


for cls in (LossScaler, DynamicLossScaler):
    cls.__module__ = loss_scaler.__name__
    setattr(loss_scaler, cls.__name__, cls)

tensor_fragment = fake_module("deepspeed.utils.tensor_fragment")


@dataclasses.dataclass
class fragment_address:
    numel: int
    start: int


fragment_address.__module__ = tensor_fragment.__name__
tensor_fragment.fragment_address = fragment_address


# ---- the model ----

def make_model():
    g = torch.Generator().manual_seed(7)
    master = collections.OrderedDict()
    master["embed.weight"] = torch.randn(11, 6, generator=g)      # frozen
    master["fc1.weight"] = torch.randn(7, 6, generator=g)
    master["fc1.bias"] = torch.randn(7, generator=g)
    master["fc2.weight"] = torch.randn(5, 7, generator=g)
    master["fc2.bias"] = torch.randn(5, generator=g)
    module = collections.OrderedDict((k, v.to(torch.bfloat16)) for k, v in master.items())
    module["out.weight"] = module["fc1.weight"]                    # tied: one storage, two names
    module["pos"] = torch.arange(3, dtype=torch.float32).to(torch.bfloat16) / 3   # a buffer
    return master, module


FROZEN = ["embed.weight"]
GROUPS = [["fc1.weight", "fc1.bias"], ["fc2.weight", "fc2.bias"]]
SHARED = {"out.weight": "fc1.weight"}
BUFFERS = ["pos"]


def model_states(module, stage, rank, frozen_fragments, placeholders):
    """The engine's model states dict: the module state dict and what zero_to_fp32 reads beside it."""
    return {
        "module": placeholders if placeholders is not None else module,
        "buffer_names": list(BUFFERS),
        "optimizer": None,
        "param_shapes": [collections.OrderedDict((n, module[n].shape) for n in group) for group in GROUPS],
        "frozen_param_shapes": collections.OrderedDict((n, module[n].shape) for n in FROZEN),
        "shared_params": dict(SHARED),
        "frozen_param_fragments": frozen_fragments,
        "lr_scheduler": None,
        "data_sampler": None,
        "random_ltd": None,
        "sparse_tensor_module_names": set(),
        "skipped_steps": 0,
        "global_steps": 7 if stage == 2 else 9,
        "global_samples": 56,
        "dp_world_size": WORLD,
        "mp_world_size": 1,
        "ds_config": {"train_batch_size": 8, "zero_optimization": {"stage": stage}, "bf16": {"enabled": True}},
        "ds_version": "0.14.0",
    }


def optim_states(zero_sd):
    return {"optimizer_state_dict": zero_sd, "ds_config": {"zero_optimization": {"stage": 3}}, "ds_version": "0.14.0"}


def zero2_partitions(master, world):
    """Each group's fp32 flat vector, padded to a multiple of 2 * world, cut in `world` partitions."""
    parts = [[] for _ in range(world)]
    mappings = [[] for _ in range(world)]
    for group in GROUPS:
        flat = torch.cat([master[n].reshape(-1) for n in group])
        padded = 2 * world * math.ceil(flat.numel() / (2 * world))
        flat = torch.cat([flat, torch.zeros(padded - flat.numel())])
        size = padded // world
        for r in range(world):
            parts[r].append(flat[r * size:(r + 1) * size].clone())
            mappings[r].append(collections.OrderedDict())
        start = 0
        for n in group:   # the slice of each parameter a rank holds, as DeepSpeed records it
            numel = master[n].numel()
            for r in range(world):
                lo, hi = max(start, r * size), min(start + numel, (r + 1) * size)
                if lo < hi:
                    mappings[r][-1][n] = fragment_address(numel=hi - lo, start=lo - r * size)
            start += numel
    return parts, mappings


def write_zero2(folder, master, module, world=WORLD, tamper=None, stage=2):
    tag = os.path.join(folder, "global_step7")
    os.makedirs(tag)
    with open(os.path.join(folder, "latest"), "w") as f:
        f.write("global_step7")
    frozen = collections.OrderedDict((n, module[n]) for n in FROZEN)
    torch.save(model_states(module, stage, 0, frozen, None), os.path.join(tag, "mp_rank_00_model_states.pt"))
    parts, mappings = zero2_partitions(master, world)
    for r in range(world):
        sd = {
            "zero_stage": ZeroStageEnum(stage),
            "loss_scaler": LossScaler(1.0),
            "dynamic_loss_scale": False,
            "overflow": False,
            "clip_grad": 1.0,
            "base_optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
            "single_partition_of_fp32_groups": parts[r],
            "group_paddings": [0, 0],
            "partition_count": [world, world],
            "ds_version": "0.14.0",
            "param_slice_mappings": mappings[r],
        }
        if tamper:
            tamper(r, sd)
        torch.save(optim_states(sd), os.path.join(tag, f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt"))


def write_zero3(folder, master, module):
    tag = os.path.join(folder, "global_step9")
    os.makedirs(tag)
    with open(os.path.join(folder, "latest"), "w") as f:
        f.write("global_step9\n")
    # ZeRO-3 module weights are empty placeholders; the real values live in the partitions
    placeholders = collections.OrderedDict((k, torch.empty(0, dtype=v.dtype)) for k, v in module.items()
                                           if k not in BUFFERS)
    for b in BUFFERS:
        placeholders[b] = module[b]
    for name, target in SHARED.items():
        placeholders[name] = placeholders[target]

    def piece(t, r):
        flat = t.reshape(-1)
        size = math.ceil(flat.numel() / WORLD)
        flat = torch.cat([flat, torch.zeros(size * WORLD - flat.numel(), dtype=flat.dtype)])
        return flat[r * size:(r + 1) * size].clone()

    for r in range(WORLD):
        frozen = collections.OrderedDict((n, piece(module[n], r)) for n in FROZEN)
        torch.save(model_states(module, 3, r, frozen, placeholders),
                   os.path.join(tag, f"zero_pp_rank_{r}_mp_rank_00_model_states.pt"))
        sd = {
            "zero_stage": ZeroStageEnum.weights,
            "loss_scaler": DynamicLossScaler(),
            "dynamic_loss_scale": True,
            "overflow": False,
            "partition_count": WORLD,
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-3}, {"lr": 1e-3}]},
            "fp32_flat_groups": [torch.cat([piece(master[n], r) for n in group]) for group in GROUPS],
        }
        torch.save(optim_states(sd), os.path.join(tag, f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt"))


def main():
    master, module = make_model()
    for name in os.listdir(HERE):
        if name.startswith(("zero", "bad_")) and os.path.isdir(os.path.join(HERE, name)):
            shutil.rmtree(os.path.join(HERE, name))
    write_zero2(os.path.join(HERE, "zero2"), master, module)
    write_zero2(os.path.join(HERE, "zero1"), master, module, world=2, stage=1)   # same layout, 2 ranks
    write_zero3(os.path.join(HERE, "zero3"), master, module)

    def short(r, sd):   # the last rank lost the tail of group 0: fc1.bias cannot be rebuilt
        if r == WORLD - 1:
            sd["single_partition_of_fp32_groups"][0] = sd["single_partition_of_fp32_groups"][0][:4].clone()

    def world(r, sd):   # rank 1 was saved by a run with another data-parallel size
        if r == 1:
            sd["partition_count"] = [2, 2]

    write_zero2(os.path.join(HERE, "bad_short"), master, module, tamper=short)
    write_zero2(os.path.join(HERE, "bad_world"), master, module, tamper=world)

    golden = collections.OrderedDict()
    for name in BUFFERS:
        golden[name] = module[name]
    for name in FROZEN:
        golden[name] = module[name]
    for group in GROUPS:
        for name in group:
            golden[name] = master[name]
    for name, target in SHARED.items():
        golden[name] = master[target]
    save_safetensors(os.path.join(HERE, "golden_fp32.safetensors"), golden.items())
    save_safetensors(os.path.join(HERE, "golden_module.safetensors"), module.items())


if __name__ == "__main__":
    main()
