#!/usr/bin/env python3
"""Megatron-LM legacy (`--ckpt-format torch`) checkpoints of the tiny MoE models, with expert parallelism.

Run with Debian's python3-torch (/usr/bin/python3 make_legacy.py); the outputs are committed.
The full tensors come from megatron_moe.py (the Hugging Face models of make_moe_models.py in
Megatron-core layouts); here they are cut the way each rank of a Megatron job holds them and
saved as that rank's iter_0000010/mp_rank_*/model_optim_rng.pt.  The Megatron-LM source followed
(NVIDIA/Megatron-LM @ d98e8a64 unless a tag is named):

- File names: mp_rank_{tp:02d}, then _{pp:03d} when pipeline-parallel, then _{ep:03d} when
  expert-parallel (megatron/training/checkpointing.py:230-276, get_checkpoint_name), so an
  EP-only name looks like a PP-only one.
- Ranks: within a pipeline stage, rank r has tp = r % TP, expert-TP rank etp = r % ETP and
  ep = (r // ETP) % EP (megatron/core/parallel_state.py:859-896, order "tp-cp-ep-dp-pp"; the
  same grid as Pai-Megatron-Patch's generate_rank_group, hf2mcore_deepseek_v3_moe.py:52-101).
  Writers: ranks with dp rank 0 or expert-dp rank 0 (checkpointing.py:790-798, core >= 0.18),
  i.e. r < max(TP, ETP*EP); before core 0.18 only expert-dp rank 0, r < ETP*EP, which loses
  dense shards when TP > ETP*EP.
- Each file holds model.state_dict_for_save_checkpoint() (checkpointing.py:1556-1600): every
  dense tensor's TP shard, the replicated router, the shared experts over the dense TP group
  (moe/shared_experts.py:102-145), and only the rank's E/EP local experts, numbered from 0
  (global = ep * E/EP + local, moe/moe_layer.py:184-193), each split over the expert-TP group.
- Layer numbers are local to the pipeline stage; uneven stages follow
  decoder_first_pipeline_num_layers (transformer/transformer_layer.py:65-220); the MTP layers
  live on the last stage, which then builds the embedding too (models/gpt/gpt_model.py:173-174).
- Expert forms: SequentialMLP experts.local_experts.{i}.linear_fc{1,2}.weight
  (moe/experts.py:1409-1451); TEGroupedMLP experts.linear_fc{1,2}.weight{i} with one
  _extra_state per linear (experts.py:183-250, extensions/transformer_engine.py:2805-2867);
  legacy GroupedMLP (core <= 0.16) experts.weight1 [H, E_l*2F/ETP] and weight2 [E_l*F/ETP, H],
  read as weight1.view(E_l, H, -1) and weight2.view(E_l, -1, H) (core_v0.14.0 experts.py:155-222,
  270-271), so expert i's fc1 is block i of weight1's memory, transposed.
- The MTP inner layer is mtp.layers.k.transformer_layer up to core 0.16 and
  mtp.layers.k.mtp_model_layer from core 0.17 (multi_token_prediction.py:1203-1227; legacy files
  have no remap hook).
- Transformer Engine's _extra_state: a uint8 tensor (TE >= 2.0) or an io.BytesIO holding a
  torch.save (TE < 2.0, transformer_engine/pytorch/module/base.py get_extra_state).

Folders written (each with latest_checkpointed_iteration.txt = 10):
  deepseek_v3_seq/       TP=2 EP=2 ETP=2 PP=1, SequentialMLP, MLA down projections replicated (core >= 0.14),
                         MTP under transformer_layer
  deepseek_v3_te/        TP=2 EP=2 ETP=2 PP=1, TEGroupedMLP names, MTP under mtp_model_layer (core >= 0.17)
  deepseek_v3_grouped/   TP=2 EP=4 ETP=1 PP=2 (stages of 2 and 3 layers), legacy GroupedMLP, MLA down
                         projections split over TP (core <= 0.13), TE < 2.0 io.BytesIO _extra_state: the
                         sparse grid mp_rank_00_PPP_000, 01_PPP_001, 00_PPP_002, 01_PPP_003
  qwen3_moe_te/          the Qwen3-MoE-like model, TP=2 EP=2 ETP=2 PP=1, TEGroupedMLP
  qwen3_moe_pp2/         the same, TP=1 EP=1 PP=2 with the embedding counted as a layer of stage 0 (1 + 2 layers)
  deepseek_v3_incomplete/ TP=4 EP=2 ETP=1 saved before core 0.18: dense shards 2 and 3 were never written
  refused/*/              rank 0's file of a layout the reader refuses (the REFUSALS below), and fp8_weights/:
                          a model holding a Transformer Engine Float8Tensor
"""
import io
import math
import os
import shutil
import sys
from collections import OrderedDict

import numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import megatron_moe as mg  # noqa: E402

VARIANTS = {
    "deepseek_v3_seq": dict(model="deepseek_v3", tp=2, ep=2, etp=2, pp=1, experts="sequential"),
    "deepseek_v3_te": dict(model="deepseek_v3", tp=2, ep=2, etp=2, pp=1, experts="te", mtp="mtp_model_layer"),
    "deepseek_v3_grouped": dict(model="deepseek_v3", tp=2, ep=4, etp=1, pp=2, first=2, experts="grouped",
                                down_proj_split=True, extra_state="bytesio"),
    "qwen3_moe_te": dict(model="qwen3_moe", tp=2, ep=2, etp=2, pp=1, experts="te"),
    "qwen3_moe_pp2": dict(model="qwen3_moe", tp=1, ep=1, etp=1, pp=2, experts="te", embedding_stage=True),
    "deepseek_v3_incomplete": dict(model="deepseek_v3", tp=4, ep=2, etp=1, pp=1, experts="sequential",
                                   writers="before_0.18", tiny=True),
}


def written_files(v):
    """{(tp, ep): etp} for the ranks that write, each (tp, ep) pair holding one expert-TP shard."""
    tp, ep, etp = v["tp"], v["ep"], v["etp"]
    writers = etp * ep if v.get("writers") == "before_0.18" else max(tp, etp * ep)
    files = {}
    for r in range(math.lcm(tp, etp * ep)):
        key = (r % tp, (r // etp) % ep)
        assert files.get(key, r % etp) == r % etp, "one (tp, ep) file would hold two expert-TP shards"
        if r < writers:
            files[key] = r % etp
    return files


def stage_layers(v, layers):
    """The layers of each pipeline stage: the first stage `first` of them, the others even; or, with the
    embedding counted as a layer of the first stage (account_for_embedding_in_pipeline_split), even."""
    pp, first = v["pp"], v.get("first")
    if pp == 1:
        return [range(layers)]
    if v.get("embedding_stage"):
        per = (layers + 1) // pp
        return [range(per - 1)] + [range(per - 1 + (p - 1) * per, per - 1 + p * per) for p in range(1, pp)]
    per = (layers - first) // (pp - 1)
    return [range(first)] + [range(first + (p - 1) * per, first + p * per) for p in range(1, pp)]


def place(v, name, stages):
    """(stages holding the tensor, its stage-local name for each) for a full name."""
    last = len(stages) - 1
    if name.startswith("decoder.layers."):
        n, tail = name[len("decoder.layers."):].split(".", 1)
        p = next(p for p, r in enumerate(stages) if int(n) in r)
        return {p: f"decoder.layers.{int(n) - stages[p].start}.{tail}"}
    if name.startswith("mtp.layers."):
        return {last: name.replace(".transformer_layer.", "." + v.get("mtp", "transformer_layer") + ".")}
    if name.startswith("embedding."):
        return {0: name, last: name}   # the last stage builds the embedding for its MTP layers too
    return {last: name}


def extra_state(v):
    """Transformer Engine's _extra_state as TE < 2.0 (a BytesIO of a torch.save) or later (a uint8 tensor)."""
    if v.get("extra_state") == "bytesio":
        b = io.BytesIO()
        torch.save({"scale_fwd": torch.ones(3), "amax_history_fwd": torch.zeros(1, 3), "recipe": "delayed"}, b)
        return b
    return torch.zeros(8, dtype=torch.uint8)


EXTRA_STATE_OF = ("linear_qkv.weight", "linear_proj.weight", "linear_fc1.weight", "linear_fc2.weight",
                  "linear_q_up_proj.weight", "linear_kv_up_proj.weight", "linear_q_down_proj.weight",
                  "linear_kv_down_proj.weight", "eh_proj.weight")


def rank_model(v, full, stages, p, tp, ep, etp):
    """The model state dict of the rank (tp, pp=p, ep) holding expert-TP shard etp."""
    experts = full_args(v)["num_experts"]
    local_count = experts // v["ep"]
    model, grouped = OrderedDict(), OrderedDict()
    for name, tensor in full.items():
        where = place(v, name, stages)
        if p not in where:
            continue
        local = where[p]
        if mg.is_expert(name):
            head, g, tail = mg.expert_of(local)
            if g // local_count != ep:
                continue
            i = g % local_count
            part = mg.shard(tensor, mg.split_kind(tail, False), etp, v["etp"])
            if v["experts"] == "sequential":
                model[f"{head}.experts.local_experts.{i}.{tail}"] = part
                model[f"{head}.experts.local_experts.{i}.{tail}".replace(".weight", "._extra_state")] = extra_state(v)
            elif v["experts"] == "te":
                linear = tail.split(".")[0]
                model[f"{head}.experts.{linear}.weight{i}"] = part
                if i == local_count - 1:
                    model[f"{head}.experts.{linear}._extra_state"] = extra_state(v)
            else:   # GroupedMLP: every local expert's block, transposed, in one tensor
                grouped.setdefault((head, tail), []).append(part.t())
            continue
        model[local] = mg.shard(tensor, mg.split_kind(name, v.get("down_proj_split", False)), tp, v["tp"])
        if name.endswith(EXTRA_STATE_OF):
            model[local.replace(".weight", "._extra_state")] = extra_state(v)
    for (head, tail), blocks in grouped.items():
        stacked = torch.stack(blocks)   # [E_l, H, 2F/ETP] or [E_l, F/ETP, H]: the view Megatron reads
        if tail.startswith("linear_fc1"):
            model[f"{head}.experts.weight1"] = stacked.reshape(stacked.shape[1], -1).clone()
        else:
            model[f"{head}.experts.weight2"] = stacked.reshape(-1, stacked.shape[2]).clone()
    return model


def full_args(v):
    return mg.deepseek_v3_args() if v["model"] == "deepseek_v3" else mg.qwen3_moe_args()


def namespace(v):
    changes = {}
    if v["experts"] == "sequential":
        changes["moe_grouped_gemm"] = False
    if v["experts"] == "grouped":
        changes["moe_use_legacy_grouped_gemm"] = True
    args = dict(full_args(v), **changes)
    return mg.namespace(args, v["tp"], v["pp"], v["ep"], v["etp"],
                        decoder_first_pipeline_num_layers=v.get("first"),
                        account_for_embedding_in_pipeline_split=bool(v.get("embedding_stage")))


def rank_dir(v, tp, p, ep):
    name = f"mp_rank_{tp:02d}"
    if v["pp"] > 1:
        name += f"_{p:03d}"
    return name + (f"_{ep:03d}" if v["ep"] > 1 else "")


def write_variant(name, v):
    full, _ = mg.deepseek_v3_megatron() if v["model"] == "deepseek_v3" else mg.qwen3_moe_megatron()
    if v.get("tiny"):   # refused before any tensor is merged: two layers of it are enough
        full = OrderedDict((k, t) for k, t in full.items() if not k.startswith(("decoder.layers.", "mtp.")) or
                           k.startswith(("decoder.layers.0.", "decoder.layers.2.")))
    layers = full_args(v)["num_layers"]
    stages = stage_layers(v, layers)
    folder = os.path.join(HERE, name)
    shutil.rmtree(folder, ignore_errors=True)
    for (tp, ep), etp in sorted(written_files(v).items()):
        for p in range(v["pp"]):
            rng = numpy.random.RandomState(tp).get_state()
            state = {
                "args": namespace(v), "checkpoint_version": 3.0, "iteration": 10,
                "model": rank_model(v, full, stages, p, tp, ep, etp),
                "optimizer": {"optimizer": {"state": {0: {"step": 10, "exp_avg": torch.zeros(2)}},
                                            "param_groups": [{"lr": 3e-4, "params": [0]}]}},
                "rng_state": [{"np_rng_state": (rng[0], rng[1][:4], rng[2], rng[3], rng[4]),
                               "torch_rng_state": torch.zeros(8, dtype=torch.uint8)}],
            }
            d = os.path.join(folder, "iter_0000010", rank_dir(v, tp, p, ep))
            os.makedirs(d)
            torch.save(state, os.path.join(d, "model_optim_rng.pt"))
    with open(os.path.join(folder, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("10")


# ---- refusals: rank 0's file alone, its args asking for what the reader cannot merge ----

REFUSALS = {
    "extended_tp": dict(moe_extended_tp=True),                    # core <= 0.9: every expert TP-split over TP x EP
    "glu_interleave": dict(moe_mlp_glu_interleave_size=16),       # transformer_config.py:1011-1017
    "single_grouped_weight": dict(moe_single_grouped_weight=True),   # extensions/transformer_engine.py:2636-2705
    "pipeline_layout": dict(pipeline_model_parallel_layout="Et|tt|tt|tL", pp=2),   # arguments.py:941-951
    "uneven_overflow": dict(decoder_first_pipeline_num_layers=6, pp=2),            # 6 of 5 layers in stage 0
    "two_shards_one_file": dict(tp=2, etp=4, ep=1),   # ranks 0 and 2 would both write mp_rank_00 (different etp)
}


def fp8_weight():
    """What Transformer Engine's Float8Tensor pickles as (transformer_engine/pytorch/tensor/float8_tensor.py,
    __reduce_ex__: (Float8Tensor._make_in_reduce_ex, (data, fp8_dtype, scale_inv, dtype))), recreated under its
    module name, so that a checkpoint saved with fp8 primary weights (--fp8-param-gather) can be refused."""
    import types
    name = "transformer_engine.pytorch.tensor.float8_tensor"
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))

    class Float8Tensor:
        def __init__(self, data):
            self._data = data

        @staticmethod
        def _make_in_reduce_ex(data, fp8_dtype, scale_inv, dtype):
            return data

        def __reduce_ex__(self, protocol):
            return (Float8Tensor._make_in_reduce_ex, (self._data, 0, torch.ones(1), torch.bfloat16))
    Float8Tensor.__module__, Float8Tensor.__qualname__ = name, "Float8Tensor"
    make = Float8Tensor._make_in_reduce_ex
    make.__module__, make.__qualname__ = name, "Float8Tensor._make_in_reduce_ex"
    sys.modules[name].Float8Tensor = Float8Tensor
    return Float8Tensor(torch.zeros(8, 48, dtype=torch.uint8))


def write_refusal(name, changes, model=None):
    c = dict(changes)
    tp, pp, ep, etp = c.pop("tp", 1), c.pop("pp", 1), c.pop("ep", 2), c.pop("etp", 1)
    args = mg.namespace(mg.deepseek_v3_args(), tp, pp, ep, etp)
    for k, v in c.items():
        setattr(args, k, v)
    folder = os.path.join(HERE, "refused", name)
    shutil.rmtree(folder, ignore_errors=True)
    v = dict(tp=tp, pp=pp, ep=ep)
    d = os.path.join(folder, "iter_0000010", rank_dir(v, 0, 0, 0) if ep > 1 else "mp_rank_00" + ("_000" if pp > 1 else ""))
    os.makedirs(d)
    model = model or OrderedDict([("embedding.word_embeddings.weight", torch.zeros(mg.PADDED_VOCAB // tp, 48,
                                                                                     dtype=torch.bfloat16))])
    torch.save({"args": args, "checkpoint_version": 3.0, "iteration": 10, "model": model},
               os.path.join(d, "model_optim_rng.pt"))
    with open(os.path.join(folder, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("10")


def main():
    for name, v in VARIANTS.items():
        write_variant(name, v)
    shutil.rmtree(os.path.join(HERE, "refused"), ignore_errors=True)
    for name, changes in REFUSALS.items():
        write_refusal(name, changes)
    write_refusal("fp8_weights", {}, OrderedDict([("decoder.layers.0.mlp.router.weight", fp8_weight())]))


if __name__ == "__main__":
    main()
