#!/usr/bin/env python3
"""PyTorch Distributed Checkpoint fixtures for tests/test_dcp.c.

Run once with Debian's python3-torch (/usr/bin/python3 make_fixtures.py); the small
outputs are committed.

torch 1.13 ships torch.distributed._shard.checkpoint, but under Python 3.11 it cannot
even be imported (a dataclass with a mutable default), so the folders are written here
the way FileSystemWriter writes them: each chunk a complete torch.save of the chunk
tensor appended to a `__<rank>_<n>.distcp` file, and `.metadata` a pickle (protocol 4)
of Metadata(state_dict_metadata, planner_data, storage_data, ...) whose dataclasses are
recreated below under the module names real files reference: torch < 2
(torch.distributed._shard...) in `old/`, torch >= 2.4 (torch.distributed.checkpoint...)
in `new/`.  The golden is `golden.safetensors`: the full tensors before cutting.

Also written: `bad/*.metadata` (the new folder's metadata with one defect each, used
over a copy of `new/`), `metadata_slots.pkl` (dataclasses with __slots__, whose state
pickles as (None, fields)), a Megatron `torch_dist/` folder (layers stacked on a leading
axis, SwiGLU fc1 as [gate_all; up_all], an `optimizer.` entry and `_extra_state` bytes)
with its goldens `torch_dist_golden.safetensors` (one tensor per layer) and
`torch_dist_hf_golden.safetensors` (the same model under Hugging Face Llama names), and a NeMo 2
folder `nemo2/` (`weights/` = the same torch_dist with names under `module.`,
`context/`).
"""
import argparse
import dataclasses
import enum
import io
import json
import os
import pickle
import shutil
import struct
import sys
import types
from typing import Any, List, Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

OLD = {"meta": "torch.distributed._shard.checkpoint.metadata",
       "props": "torch.distributed._shard.sharded_tensor.metadata",
       "fs": "torch.distributed._shard.checkpoint.filesystem",
       "enum": "MEM_FORMAT_ENCODING"}
NEW = {"meta": "torch.distributed.checkpoint.metadata",
       "props": "torch.distributed.checkpoint.metadata",
       "fs": "torch.distributed.checkpoint.filesystem",
       "enum": "_MEM_FORMAT_ENCODING"}


def module(name):
    """A module registered under `name` (and its parents below torch.distributed) for pickle to find classes in."""
    parts = name.split(".")
    for i in range(3, len(parts) + 1):
        full = ".".join(parts[:i])
        if not getattr(sys.modules.get(full), "__fixture__", False):
            m = types.ModuleType(full)
            m.__fixture__ = True
            sys.modules[full] = m
    return sys.modules[name]


def place(cls, modname, name=None):
    name = name or cls.__name__
    cls.__module__ = modname
    cls.__qualname__ = name
    cls.__name__ = name
    setattr(module(modname), name, cls)
    return cls


def classes(paths, slots=False):
    """The DCP dataclasses, as one torch version names them."""
    dc = dataclasses.dataclass(slots=True) if slots else dataclasses.dataclass

    MemFormat = place(enum.Enum(paths["enum"], {"TORCH_CONTIGUOUS_FORMAT": 0, "TORCH_CHANNELS_LAST": 1,
                                                "TORCH_PRESERVE_FORMAT": 2}), paths["props"], paths["enum"])

    @dataclasses.dataclass
    class TensorProperties:
        dtype: Any
        layout: Any = torch.strided
        requires_grad: bool = False
        memory_format: Any = torch.contiguous_format
        pin_memory: bool = False

        def __getstate__(self):   # as torch's: memory_format cannot be pickled
            return (self.dtype, self.layout, self.requires_grad, MemFormat.TORCH_CONTIGUOUS_FORMAT, self.pin_memory)

    @dc
    class ChunkStorageMetadata:
        offsets: Any
        sizes: Any

    @dc
    class TensorStorageMetadata:
        properties: Any
        size: Any
        chunks: List[Any]

    @dc
    class BytesStorageMetadata:
        pass

    @dataclasses.dataclass(frozen=True)
    class MetadataIndex:
        fqn: str
        offset: Optional[Any] = None
        index: Optional[int] = dataclasses.field(hash=False, compare=False, default=None)

    @dataclasses.dataclass
    class StorageInfo:
        relative_path: str
        offset: int
        length: int

    @dataclasses.dataclass
    class StorageMeta:
        checkpoint_id: Any = None
        save_id: Optional[str] = None
        load_id: Optional[str] = None
        modules: List[str] = dataclasses.field(default_factory=list)

    ns = types.SimpleNamespace()
    ns.TensorProperties = place(TensorProperties, paths["props"])
    for c in (ChunkStorageMetadata, TensorStorageMetadata, BytesStorageMetadata, MetadataIndex):
        setattr(ns, c.__name__, place(c, paths["meta"]))
    ns.StorageInfo = place(StorageInfo, paths["fs"], "_StorageInfo")
    if paths is NEW:
        ns.StorageMeta = place(StorageMeta, paths["meta"])

        @dataclasses.dataclass
        class Metadata:
            state_dict_metadata: Any
            planner_data: Any = None
            storage_data: Any = None
            storage_meta: Any = None
            version: Optional[str] = None
    else:
        @dataclasses.dataclass
        class Metadata:
            state_dict_metadata: Any
            planner_data: Any = None
            storage_data: Any = None
    ns.Metadata = place(Metadata, paths["meta"])
    return ns


# ---- the model and its chunks ----

def originals():
    g = torch.Generator().manual_seed(7)
    t = {
        "model.embed.weight": torch.randn(8, 6, generator=g),
        "model.layer.weight": torch.randn(6, 8, generator=g).to(torch.bfloat16),
        "model.proj.weight": torch.randn(5, 4, generator=g).to(torch.float16),
        "model.scale": torch.tensor(0.75),
        "model.cols": torch.arange(30, dtype=torch.int64).reshape(3, 10) * 7 - 50,
    }
    return t


def chunk_plan():
    """(fqn, offsets, sizes, file): rows, a 2x2 grid, one transposed chunk, a scalar, columns."""
    return [
        ("model.embed.weight", (0, 0), (3, 6), "__0_0.distcp"),
        ("model.embed.weight", (3, 0), (5, 6), "__1_0.distcp"),
        ("model.layer.weight", (0, 0), (4, 5), "__0_0.distcp"),
        ("model.layer.weight", (0, 5), (4, 3), "__1_0.distcp"),
        ("model.layer.weight", (4, 0), (2, 5), "__1_0.distcp"),
        ("model.layer.weight", (4, 5), (2, 3), "__0_0.distcp"),
        ("model.proj.weight", (0, 0), (5, 4), "__1_0.distcp"),
        ("model.scale", (), (), "__0_0.distcp"),
        ("model.cols", (0, 0), (3, 4), "__0_0.distcp"),
        ("model.cols", (0, 4), (3, 6), "__1_0.distcp"),
    ]


def cut(t, offsets, sizes):
    for d, (o, s) in enumerate(zip(offsets, sizes)):
        t = t.narrow(d, o, s)
    if t.dim() == 2 and t.shape == (5, 4) and t.dtype == torch.float16:
        # stored non-contiguous, as DCP keeps a chunk whose storage is exactly its elements: a transpose
        return t.t().contiguous().t()
    return t.clone()


def torch_save_bytes(obj):
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


def write_folder(dest, ns, tensors, plan, byte_entries, extra_state=None, protocol=4):
    """Writes chunks into their files and returns (state_dict_metadata, storage_data)."""
    os.makedirs(dest, exist_ok=True)
    files = {}
    storage = {}
    sdm = {}
    for name, payload, fname in byte_entries:
        buf = files.setdefault(fname, bytearray())
        storage[ns.MetadataIndex(name)] = ns.StorageInfo(fname, len(buf), len(payload))
        buf += payload
        sdm[name] = ns.BytesStorageMetadata()
    for i, (fqn, offsets, sizes, fname) in enumerate(plan):
        t = tensors[fqn]
        data = torch_save_bytes(cut(t, offsets, sizes))
        buf = files.setdefault(fname, bytearray())
        idx = ns.MetadataIndex(fqn, torch.Size(offsets), i)
        storage[idx] = ns.StorageInfo(fname, len(buf), len(data))
        buf += data
        if fqn not in sdm:
            sdm[fqn] = ns.TensorStorageMetadata(ns.TensorProperties(t.dtype), torch.Size(t.shape), [])
        sdm[fqn].chunks.append(ns.ChunkStorageMetadata(torch.Size(offsets), torch.Size(sizes)))
    for fname, buf in files.items():
        with open(os.path.join(dest, fname), "wb") as f:
            f.write(buf)
    return sdm, storage


def metadata_bytes(ns, sdm, storage, planner_data=None, extra=None, protocol=4):
    if hasattr(ns, "StorageMeta"):
        md = ns.Metadata(sdm, planner_data, storage, ns.StorageMeta(__import__("pathlib").PosixPath("/ckpt/step100"),
                                                                     "save-1"), "1.0.0")
    else:
        md = ns.Metadata(sdm, planner_data, storage)
    for k, v in (extra or {}).items():
        setattr(md, k, v)
    return pickle.dumps(md, protocol=protocol)


# ---- goldens ----

ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


# ---- the plain DCP folders ----

def dcp_folders():
    tensors = originals()
    plan = chunk_plan()
    extra = [("extra_state", torch_save_bytes({"step": 3, "note": "not a tensor"}), "__0_0.distcp")]
    for paths, sub in ((OLD, "old"), (NEW, "new")):
        ns = classes(paths)
        dest = os.path.join(HERE, sub)
        shutil.rmtree(dest, ignore_errors=True)
        sdm, storage = write_folder(dest, ns, tensors, plan, extra)
        planner = {k: (k,) for k in sdm}
        with open(os.path.join(dest, ".metadata"), "wb") as f:
            f.write(metadata_bytes(ns, sdm, storage, planner))
        if sub == "new":
            bad_metadata(ns, sdm, storage)
    write_safetensors(os.path.join(HERE, "golden.safetensors"), tensors)
    slotted = classes(NEW, slots=True)
    sdm, storage = write_folder(os.path.join(HERE, "scratch"), slotted, tensors, plan, extra)
    shutil.rmtree(os.path.join(HERE, "scratch"))
    with open(os.path.join(HERE, "metadata_slots.pkl"), "wb") as f:
        f.write(metadata_bytes(slotted, sdm, storage))


def bad_metadata(ns, sdm, storage):
    """One defect each, over the new folder's chunk files."""
    out = os.path.join(HERE, "bad")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    def write(name, s, st, md_bytes=None):
        with open(os.path.join(out, name + ".metadata"), "wb") as f:
            f.write(md_bytes or metadata_bytes(ns, s, st))

    def copy_sdm():
        return {k: (ns.TensorStorageMetadata(v.properties, v.size, list(v.chunks))
                    if isinstance(v, ns.TensorStorageMetadata) else v) for k, v in sdm.items()}

    # a gap: model.cols loses its column chunk [0:3, 4:10]
    s = copy_sdm()
    s["model.cols"].chunks = s["model.cols"].chunks[:1]
    write("gap", s, storage)
    # overlapping chunks: model.embed.weight rows [0:3] and [3:8] claimed as [0:3] and [2:7]
    s = copy_sdm()
    st = dict(storage)
    moved = ns.ChunkStorageMetadata(torch.Size((2, 0)), torch.Size((5, 6)))
    old_key = next(k for k in st if k.fqn == "model.embed.weight" and tuple(k.offset) == (3, 0))
    st[ns.MetadataIndex("model.embed.weight", torch.Size((2, 0)), 1)] = st.pop(old_key)
    s["model.embed.weight"].chunks = [s["model.embed.weight"].chunks[0], moved]
    write("overlap", s, st)
    # a chunk without its storage_data entry
    st = {k: v for k, v in storage.items() if not (k.fqn == "model.layer.weight" and tuple(k.offset) == (4, 5))}
    write("missing_storage", sdm, st)
    # a path that leaves the folder
    st = dict(storage)
    key = next(k for k in st if k.fqn == "model.proj.weight")
    st[key] = ns.StorageInfo("../new/" + st[key].relative_path, st[key].offset, st[key].length)
    write("escape", sdm, st)
    # a length past the end of its file
    st = dict(storage)
    key = next(k for k in st if k.fqn == "model.scale")
    st[key] = ns.StorageInfo(st[key].relative_path, st[key].offset, 1 << 30)
    write("length", sdm, st)
    # a chunk whose data is not what the metadata says: model.proj.weight declared float32, stored float16
    s = copy_sdm()
    s["model.proj.weight"] = ns.TensorStorageMetadata(ns.TensorProperties(torch.float32), s["model.proj.weight"].size,
                                                      s["model.proj.weight"].chunks)
    write("wrong_type", s, storage)
    # a class that is not a DCP one: a near-miss of TensorStorageMetadata's name
    good = metadata_bytes(ns, sdm, storage)
    assert good.count(b"TensorStorageMetadata") == 1
    write("unknown_class", None, None, good.replace(b"TensorStorageMetadata", b"TensorStorageMetadatX"))


# ---- Megatron torch_dist and NeMo 2 ----

MEGATRON = dict(num_layers=2, hidden_size=8, ffn_hidden_size=6, num_attention_heads=2, num_query_groups=1,
                kv_channels=4, group_query_attention=True, swiglu=True, padded_vocab_size=16, vocab_size=14,
                max_position_embeddings=32, norm_epsilon=1e-5, rotary_base=10000,
                tensor_model_parallel_size=2, pipeline_model_parallel_size=1)


# context/model.yaml as NeMo 2 writes it (Hydra style), with nested blocks whose keys must not be taken
NEMO_MODEL_YAML = """_target_: nemo.collections.llm.gpt.model.llama.LlamaModel
config:
  _target_: nemo.collections.llm.gpt.model.llama.Llama3Config
  activation_func:
    _call_: false
    _target_: torch.nn.functional.silu
    num_layers: 99
  add_bias_linear: false
  ffn_hidden_size: 6
  gated_linear_unit: true
  hidden_size: 8
  kv_channels: null
  layernorm_epsilon: 1.0e-05
  num_attention_heads: 2
  num_layers: 2
  num_query_groups: 1
  rotary_base: 10000
  seq_length: 32
  vocab_size: 14
optim:
  config:
    lr: 0.0003
tokenizer:
  _target_: nemo.collections.common.tokenizers.huggingface.auto_tokenizer.AutoTokenizer
  vocab_size: 999
"""


def megatron_model():
    g = torch.Generator().manual_seed(11)
    L, H, F, V = 2, 8, 6, 16
    qkv_rows = (2 + 2 * 1) * 4   # heads + 2 * groups, times kv_channels
    r = lambda *s: torch.randn(*s, generator=g).to(torch.bfloat16)
    stacked = {
        "decoder.layers.self_attention.linear_qkv.layer_norm_weight": r(L, H),
        "decoder.layers.self_attention.linear_qkv.weight": r(L, qkv_rows, H),
        "decoder.layers.self_attention.linear_proj.weight": r(L, H, H),
        "decoder.layers.mlp.linear_fc1.layer_norm_weight": r(L, H),
        "decoder.layers.mlp.linear_fc1.weight": r(L, 2 * F, H),   # [gate_all; up_all]
        "decoder.layers.mlp.linear_fc2.weight": r(L, H, F),
    }
    flat = {
        "embedding.word_embeddings.weight": r(V, H),
        "decoder.final_layernorm.weight": r(H),
        "output_layer.weight": r(V, H),
    }
    return stacked, flat


def megatron_plan(stacked, flat, tp=2):
    """Chunks as Megatron's ranks write them: per layer and tensor-parallel rank."""
    plan = []
    for name, t in stacked.items():
        L = t.shape[0]
        for layer in range(L):
            rest = list(t.shape[1:])
            f = "__%d_0.distcp" % layer
            if name.endswith("linear_fc1.weight"):   # 2 * tp chunks: gate of each rank, then up of each rank
                step = rest[0] // (2 * tp)
                for k in range(2 * tp):
                    plan.append((name, (layer, k * step, 0), (1, step, rest[1]), f))
            elif name.endswith("linear_proj.weight") or name.endswith("linear_fc2.weight"):
                step = rest[1] // tp
                for k in range(tp):
                    plan.append((name, (layer, 0, k * step), (1, rest[0], step), f))
            elif name.endswith("linear_qkv.weight"):
                step = rest[0] // tp
                for k in range(tp):
                    plan.append((name, (layer, k * step, 0), (1, step, rest[1]), f))
            else:
                plan.append((name, (layer,) + (0,) * len(rest), (1,) + tuple(rest), f))
    for name, t in flat.items():
        if t.dim() == 2:
            step = t.shape[0] // tp
            for k in range(tp):
                plan.append((name, (k * step, 0), (step, t.shape[1]), "__%d_0.distcp" % k))
        else:
            plan.append((name, (0,), tuple(t.shape), "__0_0.distcp"))
    return plan


def torch_dist_folder(dest, prefix, with_args):
    ns = classes(NEW)
    stacked, flat = megatron_model()
    tensors = {prefix + k: v for k, v in list(stacked.items()) + list(flat.items())}
    opt_name = "optimizer.state.exp_avg." + prefix + "decoder.final_layernorm.weight"
    tensors[opt_name] = torch.zeros(8)
    plan = [(prefix + n, o, s, f) for n, o, s, f in megatron_plan(stacked, flat)]
    plan.append((opt_name, (0,), (8,), "__0_0.distcp"))
    extra = [(prefix + "decoder.layers.self_attention.core_attention._extra_state/shard_0_2",
              torch_save_bytes(None), "__0_0.distcp")]
    shutil.rmtree(dest, ignore_errors=True)
    sdm, storage = write_folder(dest, ns, tensors, plan, extra)
    mcore = {k: {} for k in sdm}
    with open(os.path.join(dest, ".metadata"), "wb") as f:
        f.write(metadata_bytes(ns, sdm, storage, {k: (k,) for k in sdm}, {"mcore_data": mcore}))
    with open(os.path.join(dest, "metadata.json"), "w") as f:
        json.dump({"sharded_backend": "torch_dist", "sharded_backend_version": 1, "common_backend": "torch",
                   "common_backend_version": 1}, f)
    common = {"checkpoint_version": 3.0, "iteration": 100}
    if with_args:
        common["args"] = argparse.Namespace(**MEGATRON)
    torch.save(common, os.path.join(dest, "common.pt"))
    return stacked, flat


def hugging_face_names(stacked, flat):
    """The same model as a Hugging Face Llama: fused QKV and fc1 split, vocabulary padding cut."""
    m, hf = MEGATRON, {}
    heads, groups, kv = m["num_attention_heads"], m["num_query_groups"], m["kv_channels"]
    vocab, ffn = m["vocab_size"], m["ffn_hidden_size"]
    hf["model.embed_tokens.weight"] = flat["embedding.word_embeddings.weight"][:vocab]
    for layer in range(m["num_layers"]):
        p, s = "model.layers.%d." % layer, {k: v[layer] for k, v in stacked.items()}
        qkv = s["decoder.layers.self_attention.linear_qkv.weight"].reshape(groups, heads // groups + 2, kv, -1)
        hf[p + "input_layernorm.weight"] = s["decoder.layers.self_attention.linear_qkv.layer_norm_weight"]
        hf[p + "self_attn.q_proj.weight"] = qkv[:, :heads // groups].reshape(heads * kv, -1)
        hf[p + "self_attn.k_proj.weight"] = qkv[:, -2].reshape(groups * kv, -1)
        hf[p + "self_attn.v_proj.weight"] = qkv[:, -1].reshape(groups * kv, -1)
        hf[p + "self_attn.o_proj.weight"] = s["decoder.layers.self_attention.linear_proj.weight"]
        hf[p + "post_attention_layernorm.weight"] = s["decoder.layers.mlp.linear_fc1.layer_norm_weight"]
        hf[p + "mlp.gate_proj.weight"] = s["decoder.layers.mlp.linear_fc1.weight"][:ffn]
        hf[p + "mlp.up_proj.weight"] = s["decoder.layers.mlp.linear_fc1.weight"][ffn:]
        hf[p + "mlp.down_proj.weight"] = s["decoder.layers.mlp.linear_fc2.weight"]
    hf["model.norm.weight"] = flat["decoder.final_layernorm.weight"]
    hf["lm_head.weight"] = flat["output_layer.weight"][:vocab]
    return hf


def megatron_folders():
    stacked, flat = torch_dist_folder(os.path.join(HERE, "torch_dist"), "", True)
    golden = {}
    for name, t in stacked.items():
        for layer in range(t.shape[0]):
            golden[name.replace("decoder.layers.", "decoder.layers.%d." % layer)] = t[layer]
    golden.update(flat)
    write_safetensors(os.path.join(HERE, "torch_dist_golden.safetensors"), golden)
    write_safetensors(os.path.join(HERE, "torch_dist_hf_golden.safetensors"), hugging_face_names(stacked, flat))
    nemo = os.path.join(HERE, "nemo2")
    shutil.rmtree(nemo, ignore_errors=True)
    torch_dist_folder(os.path.join(nemo, "weights"), "module.", False)
    os.makedirs(os.path.join(nemo, "context"))
    with open(os.path.join(nemo, "context", "model.yaml"), "w") as f:
        f.write(NEMO_MODEL_YAML)


if __name__ == "__main__":
    dcp_folders()
    megatron_folders()
