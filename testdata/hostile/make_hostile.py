#!/usr/bin/env python3
"""Hostile inputs for tests/hostile.sh that a shell cannot make: torch.save archives whose
pickles describe impossible tensors, a zip64 archive whose extra fields lie about sizes, and
shard index files naming shards outside their folder.  Run once with /usr/bin/python3 (torch
1.13); the small outputs are committed.  Every one must be refused with exit 3.
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


class Storage:
    """Pickled as torch.save's persistent id ('storage', FloatStorage, key, 'cpu', numel)."""

    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    """Pickled as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def torch_zip(name, tensor, storage_bytes):
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(collections.OrderedDict(weight=tensor))
    path = os.path.join(HERE, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/data/0", storage_bytes)
        z.writestr("archive/version", "3\n")
    return path


def zip_lying_about(path, entries, liar, claimed):
    """A stored zip of `entries` (name, bytes) in which entry `liar`'s sizes are 0xFFFFFFFF in its
    local and central headers and its zip64 extra fields claim `claimed` bytes."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        name_b, crc, offset = name.encode(), zipfile.crc32(data), len(out)
        lie = name == liar
        size32 = 0xFFFFFFFF if lie else len(data)
        extra = struct.pack("<HHQQ", 1, 16, claimed, claimed) if lie else b""
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, size32, size32, len(name_b), len(extra))
        out += name_b + extra + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, size32, size32,
                               len(name_b), len(extra), 0, 0, 0, 0, offset) + name_b + extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    open(path, "wb").write(bytes(out + central + end))


def main():
    four = struct.pack("<4f", 1, 2, 3, 4)
    # a view of 8 elements over a storage of 4
    torch_zip("storage-smaller-than-view.pt", Tensor(Storage("0", 4), 0, (8,), (1,)), four)
    # a shape whose element count overflows 64 bits (2^33 cubed), stride 0 so no storage could hold it anyway
    torch_zip("shape-overflows-64-bits.pt", Tensor(Storage("0", 4), 0, (1 << 33, 1 << 33, 1 << 33), (0, 0, 0)), four)
    # a negative stride walking backwards from the storage's end
    torch_zip("negative-stride.pt", Tensor(Storage("0", 4), 3, (4,), (-1,)), four)
    # a well-formed tensor in an archive whose zip64 fields say the storage entry is 4 EiB
    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(collections.OrderedDict(weight=Tensor(Storage("0", 4), 0, (4,), (1,))))
    zip_lying_about(os.path.join(HERE, "zip64-lying-sizes.pt"),
                    [("archive/data.pkl", pkl.getvalue()), ("archive/data/0", four), ("archive/version", b"3\n")],
                    "archive/data/0", 1 << 62)
    # shard indexes naming a shard outside their folder
    for folder, index, shard in (("index-escape-torch", "pytorch_model.bin.index.json", "../negative-stride.pt"),
                                 ("index-escape-safetensors", "model.safetensors.index.json",
                                  "../../sample/model-00001-of-00002.safetensors")):
        os.makedirs(os.path.join(HERE, folder), exist_ok=True)
        with open(os.path.join(HERE, folder, index), "w") as f:
            json.dump({"metadata": {}, "weight_map": {"weight": shard}}, f)


if __name__ == "__main__":
    main()
