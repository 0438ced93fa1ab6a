#!/usr/bin/env python3
"""Pairs of tensors that differ only in bits a value comparison misses, for tests/diff_bits.sh: -0.0
against +0.0, NaNs of another payload or sign, and, for contrast, one ulp and an infinity.  torch makes
the values (a NaN's payload set through an int32 view, as torch.Tensor.view(dtype) reinterprets bits:
torch/_tensor_docs.py, view(dtype)); testdata/safetensors_file.py writes them.  Run once with
/usr/bin/python3 (Debian's python3-torch); the outputs are committed.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from safetensors_file import save_safetensors  # noqa: E402

BASE = [1.0, 0.0, float("nan"), 2.0]


def f32(bits_at=None, value_at=None):
    """BASE as F32, with element i's bits replaced (bits_at=(i, int32)) or its value (value_at=(i, float))."""
    t = torch.tensor(BASE, dtype=torch.float32)
    if value_at:
        t[value_at[0]] = value_at[1]
    if bits_at:
        t.view(torch.int32)[bits_at[0]] = bits_at[1]
    return t


def bf16(nan_bits=None):
    t = torch.tensor(BASE, dtype=torch.bfloat16)
    if nan_bits is not None:
        t.view(torch.int16)[2] = nan_bits
    return t


def main():
    cases = {
        "base": (f32(), bf16()),
        "negative-zero": (f32(value_at=(1, -0.0)), bf16()),
        "nan-payload": (f32(bits_at=(2, 0x7FC00001)), bf16(0x7FC1)),
        "nan-sign": (f32(bits_at=(2, -0x400000)), bf16()),   # 0xFFC00000: the default NaN, negative
        "one-ulp": (f32(bits_at=(3, 0x40000001)), bf16()),   # 2.0 + 2^-22
        "infinity": (f32(value_at=(3, float("inf"))), bf16()),
    }
    for name, (w, h) in cases.items():
        save_safetensors(os.path.join(HERE, name + ".safetensors"), [("w", w), ("h", h)])


if __name__ == "__main__":
    main()
