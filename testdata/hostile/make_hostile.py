#!/usr/bin/env python3
"""Hostile inputs for tests/hostile.sh that a shell cannot make: torch.save archives whose
pickles describe impossible tensors, zips whose headers lie about sizes or places (zip64 extra
fields, zip bombs, entries sharing bytes or lying outside the file), and
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
import zlib

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


def torch_zip(name, tensor, storage_bytes, root=None):
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(root if root is not None else collections.OrderedDict(weight=tensor))
    path = os.path.join(HERE, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for entry, data in (("archive/data.pkl", buf.getvalue()), ("archive/data/0", storage_bytes),
                            ("archive/version", b"3\n")):
            z.writestr(zipfile.ZipInfo(entry, date_time=(1980, 1, 1, 0, 0, 0)), data)   # the same bytes each run
    return path


def raw_zip(path, entries):
    """Writes a zip of `entries` by hand, so that its headers can lie.  Each entry is a dict:
    name, data (the bytes stored), and optionally method (8 = deflate), size (the uncompressed
    size claimed), crc, zip64 (claim this size in zip64 extra fields, 0xFFFFFFFF in the headers)
    and at (the local header offset the central directory claims: a number, or the name of an
    entry written before, whose local header and data it then shares instead of having its own)."""
    out, central, offsets = bytearray(), bytearray(), {}
    for e in entries:
        name_b, data = e["name"].encode(), e["data"]
        method, crc = e.get("method", 0), e.get("crc", zipfile.crc32(data))
        size, csize, offset = e.get("size", len(data)), len(data), len(out)
        extra = b""
        if "zip64" in e:
            size = csize = 0xFFFFFFFF
            extra = struct.pack("<HHQQ", 1, 16, e["zip64"], e["zip64"])
        at = e.get("at", offset)
        if isinstance(at, str):
            at = offsets[at]
        else:
            offsets[e["name"]] = offset
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0, crc, csize, size, len(name_b),
                               len(extra))
            out += name_b + extra + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0, crc, csize, size,
                               len(name_b), len(extra), 0, 0, 0, 0, at) + name_b + extra
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    open(os.path.join(HERE, path), "wb").write(bytes(out + central + end))


def deflate(data):
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(data) + z.flush()


def tensor_pickle(numel):
    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(collections.OrderedDict(weight=Tensor(Storage("0", numel), 0, (numel,), (1,))))
    return pkl.getvalue()


def hostile_zips(four):
    pkl, version = tensor_pickle(4), {"name": "archive/version", "data": b"3\n"}
    # a well-formed tensor in an archive whose zip64 fields say the storage entry is 4 EiB
    raw_zip("zip64-lying-sizes.pt", [{"name": "archive/data.pkl", "data": pkl},
                                     {"name": "archive/data/0", "data": four, "zip64": 1 << 62}, version])
    # zip bombs: a deflated float storage declaring 4 GiB (less 4 bytes); one declaring 16 bytes that
    # inflates to 16 MiB; and, as in non-recursive zip bombs, many entries sharing one stretch of data
    zeros = deflate(bytes(16 << 20))
    raw_zip("zip-bomb-declared.pt", [{"name": "archive/data.pkl", "data": tensor_pickle(0x3FFFFFFF)},
                                     {"name": "archive/data/0", "data": zeros, "method": 8, "size": 0xFFFFFFFC,
                                      "crc": 0}, version])
    raw_zip("zip-bomb-lying.pt", [{"name": "archive/data.pkl", "data": pkl},
                                  {"name": "archive/data/0", "data": zeros, "method": 8, "size": 16,
                                   "crc": zipfile.crc32(bytes(16))}, version])
    shared = [{"name": "archive/data/%d" % i, "data": zeros, "method": 8, "size": 16 << 20, "crc": 0,
               "at": "archive/data/0"} for i in range(1, 8)]
    raw_zip("zip-bomb-overlapping.pt", [{"name": "archive/data.pkl", "data": pkl},
                                        {"name": "archive/data/0", "data": zeros, "method": 8, "size": 16 << 20,
                                         "crc": 0}] + shared + [version])
    # a central directory entry whose local header would lie past the end of the file
    raw_zip("zip-entry-outside.pt", [{"name": "archive/data.pkl", "data": pkl},
                                     {"name": "archive/data/0", "data": four, "at": 1 << 30}, version])


def main():
    four = struct.pack("<4f", 1, 2, 3, 4)
    # a view of 8 elements over a storage of 4
    torch_zip("storage-smaller-than-view.pt", Tensor(Storage("0", 4), 0, (8,), (1,)), four)
    # a shape whose element count overflows 64 bits (2^33 cubed), stride 0 so no storage could hold it anyway
    torch_zip("shape-overflows-64-bits.pt", Tensor(Storage("0", 4), 0, (1 << 33, 1 << 33, 1 << 33), (0, 0, 0)), four)
    # one tensor reached through 2^40 paths ((x, x) forty times over, each level pickled once): as many tied
    # weights, were they all taken
    x = Tensor(Storage("0", 4), 0, (4,), (1,))
    for _ in range(40):
        x = (x, x)
    torch_zip("alias-bomb.pt", None, four, collections.OrderedDict(weight=x))
    # a negative stride walking backwards from the storage's end
    torch_zip("negative-stride.pt", Tensor(Storage("0", 4), 3, (4,), (-1,)), four)
    hostile_zips(four)
    # shard indexes naming a shard outside their folder
    for folder, index, shard in (("index-escape-torch", "pytorch_model.bin.index.json", "../negative-stride.pt"),
                                 ("index-escape-safetensors", "model.safetensors.index.json",
                                  "../../sample/model-00001-of-00002.safetensors")):
        os.makedirs(os.path.join(HERE, folder), exist_ok=True)
        with open(os.path.join(HERE, folder, index), "w") as f:
            json.dump({"metadata": {}, "weight_map": {"weight": shard}}, f)


if __name__ == "__main__":
    main()
