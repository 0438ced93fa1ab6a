#!/usr/bin/env python3
"""torch.save fixtures and golden values for tests/test_torch.c.

Run once with Debian's python3-torch (/usr/bin/python3 make_fixtures.py); the small
outputs are committed.  Golden values come from torch.load itself: for every tensor,
flattened to the dotted name libckpt gives it (dict keys and list indices joined by
dots; a bare tensor is "tensor"), its dtype, shape, byte count and an FNV-1a 64-bit
checksum of its values in row-major little-endian order, as torch computes them
(views, strides and offsets applied by torch, not by us).  The same is written for
the external files under ../shared/external that must be read.
"""
import argparse
import collections
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
EXTERNAL = os.path.join(HERE, "..", "..", "..", "shared", "external")
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL", torch.complex64: "C64"}


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def flatten(obj, prefix, out, seen):
    if isinstance(obj, torch.Tensor):
        name = prefix or "tensor"
        if id(obj) in seen:
            out[name] = {"alias_of": seen[id(obj)]}
            return
        seen[id(obj)] = name
        data = tensor_bytes(obj)
        out[name] = {"dtype": DTYPES[obj.dtype], "shape": list(obj.shape), "nbytes": len(data), "fnv": fnv1a64(data)}
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out, seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}.{i}" if prefix else str(i), out, seen)
    elif isinstance(obj, argparse.Namespace):
        flatten(vars(obj), prefix, out, seen)


def golden_of(path):
    out = {}
    flatten(torch.load(path, map_location="cpu"), "", out, {})
    return out


def make_fixtures():
    g = torch.Generator().manual_seed(7)
    dtypes = {
        "bf16": torch.randn(3, 5, generator=g).to(torch.bfloat16),
        "f16": torch.randn(4, 3, generator=g).to(torch.float16),
        "f32": torch.randn(2, 3, 4, generator=g),
        "f64": torch.randn(5, generator=g, dtype=torch.float64),
        "i8": torch.randint(-128, 127, (6,), generator=g, dtype=torch.int8),
        "i16": torch.randint(-30000, 30000, (2, 2), generator=g, dtype=torch.int16),
        "i32": torch.randint(-2**31, 2**31 - 1, (3,), generator=g, dtype=torch.int32),
        "i64": torch.tensor([-2**62, 0, 2**62 + 5]),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    torch.save(dtypes, os.path.join(HERE, "dtypes.pt"))

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = collections.OrderedDict([
        ("base", base),
        ("transposed", base.t()),
        ("slice", base[1:3, 1:4]),
        ("expanded", base[0, :3].expand(2, 3)),
        ("offset", base.view(-1)[5:9]),
        ("strided", base[:, ::2]),
        ("tied", base),
    ])
    torch.save(views, os.path.join(HERE, "views.pt"))
    torch.save(views, os.path.join(HERE, "views_legacy.pt"), _use_new_zipfile_serialization=False)

    linear = torch.nn.Linear(3, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.arange(6, dtype=torch.float32).reshape(2, 3))
        linear.bias.copy_(torch.tensor([0.5, -0.5]))
    args = argparse.Namespace(lr=0.001, hidden_size=64, name="tiny", use_bias=True, layers=[1, 2])
    ckpt = {"iteration": 100, "args": args, "model": {"layer": linear.state_dict()},
            "params": [torch.nn.Parameter(torch.ones(2)), torch.zeros(1)], "note": None}
    torch.save(ckpt, os.path.join(HERE, "training.pt"))

    write_big_endian(os.path.join(HERE, "views.pt"), os.path.join(HERE, "views_big_endian.pt"))


def write_big_endian(src, dst):
    """The same archive with byteorder 'big' and every storage byte-swapped, as a big-endian host writes it."""
    zin = zipfile.ZipFile(src)
    prefix = zin.infolist()[0].filename.split("/")[0]
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/byteorder"):
                continue
            if "/data/" in info.filename:
                data = np.frombuffer(data, dtype="<f4").astype(">f4").tobytes()
            zout.writestr(info.filename, data)
        zout.writestr(prefix + "/byteorder", b"big")   # torch 1.13 writes none: absent means little


def main():
    make_fixtures()
    golden = {}
    for name in ["dtypes.pt", "views.pt", "views_legacy.pt", "training.pt"]:
        golden[name] = golden_of(os.path.join(HERE, name))
    golden["views_big_endian.pt"] = golden["views.pt"]
    external = {}
    for folder, names in [("burn", sorted(n for n in os.listdir(os.path.join(EXTERNAL, "burn"))
                                          if n.endswith(".pt") and n != "broken.pt")),
                          ("candle", ["test.pt", "test_with_key.pt", "fortran_tensor_3d.pth"]),
                          ("picklescan/data", ["pytorch_model.bin", "new_pytorch_model.bin"])]:
        for n in names:
            external[f"{folder}/{n}"] = golden_of(os.path.join(EXTERNAL, folder, n))
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump({"fixtures": golden, "external": external}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
