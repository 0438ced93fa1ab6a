"""What the binding's tests share: where the fixtures are, and an independent safetensors reader.

The reader (tests/check_contracts.py's) is Python over the format's description (an 8-byte little-endian header length, a
JSON header, raw little-endian data): it never calls libckpt, so values the binding returns are
checked against the files themselves, and against the goldens torch wrote with the fixtures
(testdata/torch/golden.json: FNV-1a of each tensor's logical bytes; testdata/sample_golden.json).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.environ.get("CKPT_TESTDATA") or os.path.join(HERE, os.pardir, os.pardir, "testdata")
EXTERNAL = os.environ.get("CKPT_EXTERNAL") or os.path.join(HERE, os.pardir, os.pardir, os.pardir, "shared",
                                                           "external")

sys.path.insert(0, os.path.join(HERE, os.pardir, os.pardir, "tests"))
import check_contracts  # noqa: E402 - the repository's own independent reader, found beside the C tests

# raw-bits dtypes: what the tests compare bit for bit, whatever numpy type the binding chose
RAW = {"BOOL": "u1", "U8": "u1", "I8": "u1", "F8_E4M3": "u1", "F8_E5M2": "u1", "I16": "<u2", "U16": "<u2",
       "F16": "<u2", "BF16": "<u2", "I32": "<u4", "U32": "<u4", "F32": "<u4", "I64": "<u8", "U64": "<u8",
       "F64": "<u8"}


def data(*parts):
    return os.path.join(TESTDATA, *parts)


def read_safetensors(path):
    """{name: (dtype name, shape, little-endian bytes)} of one safetensors file, and its metadata:
    the reader tests/check_contracts.py checks loader contracts with."""
    return check_contracts.read_file(path)


def read_folder(path):
    """Every tensor of a folder of safetensors shards."""
    out = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            out.update(read_safetensors(os.path.join(path, name))[0])
    return out


def raw(array):
    """The little-endian bytes of an array the binding returned."""
    return np.ascontiguousarray(array).tobytes()


def fnv1a64(data):
    """FNV-1a 64 as testdata/torch/make_fixtures.py computes it (the fixtures are small)."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def bf16_bits_to_f16_bits(bits):
    """What torch's bf16.to(float16) gives, computed by numpy: bf16 -> float32 (exact) -> float16
    (round to nearest even; every sample value is within float16's range)."""
    f32 = (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    return f32.astype(np.float16).view(np.uint16)
