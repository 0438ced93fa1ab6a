#!/usr/bin/env python3
"""Golden values for the int8 weight quantizer (tests/test_quant.c), from real torch.

Run once with Debian's python3-torch (/usr/bin/python3 make_quant_golden.py); the
outputs are committed and the tests need no Python.

The quantizer is msModelSlim's data-free "minmax" per-channel symmetric int8
quantizer, as its torch code runs for a weight in the type it was loaded in
(msmodelslim_rtn.py says which lines of msModelSlim it follows).

Cases, for BF16, F16, F32 and F64 weights:
  special   hand-made rows: ties after the division (x.5 codes), a row whose
            negative end dominates (code -128), quotients that round up to 128 and
            are clamped, rows of zeros and of negative zeros, rows below the
            epsilon floor, one-element rows, subnormals;
  random    normal values scaled by 2^e per row, e spread over the type's range;
  patterns  (16-bit types) every finite bit pattern, 256 consecutive codes a row,
            then the same set shuffled;
  bits      (F32) 65,536 random finite bit patterns;
  narrow    matrices of 1, 7, 31, 33 and 65 columns (the vector path's tails).
"""
import json
import os

import torch

from msmodelslim_rtn import rtn_int8

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel")
TYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64}
INT_VIEW = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32,
            torch.float64: torch.int64}


def special(dtype):
    rows = [
        [127, 2.5, 3.5, -0.5, 0.5, 1.5, -1.5, -2.5, 126.5, -126.5, 64.5, 0.25, -0.75],
        [-127.5, 127, 1, -1, 63.5, -63.5],
        [127.25, 127.5, 127.75, -127.75],
        [],
        [-0.0, -0.0, -0.0],
        [1e-6, -3e-6, 2e-7, 5e-8],
        [3e-5, -1e-5],
        [42.0],
        [-42.0],
        [1e-30, -2e-30, 3e-31],
        [6.5e4 if dtype == torch.float16 else 3.0e38, -1.0, 1.0, 2.0 ** -10],
        [0.1 * k for k in range(-20, 21)],
        [1.0 / 3, 2.0 / 3, -1.0 / 3, 1.0, -1.0 / 7, 5.0 / 7],
        [2.0 ** -24, -(2.0 ** -24), 2.0 ** -20],
    ]
    cols = max(len(r) for r in rows)
    m = torch.zeros(len(rows), cols, dtype=torch.float64)
    for i, r in enumerate(rows):
        m[i, : len(r)] = torch.tensor(r, dtype=torch.float64)
    return m.to(dtype)


def random_rows(dtype, g, rows, cols):
    lo, hi = {torch.float16: (-20, 10), torch.bfloat16: (-60, 60)}.get(dtype, (-100, 100))
    e = torch.randint(lo, hi + 1, (rows, 1), generator=g).double()
    return (torch.randn(rows, cols, generator=g, dtype=torch.float64) * torch.pow(2.0, e)).to(dtype)


def finite_patterns(dtype):
    codes = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16).view(dtype)
    codes = codes[torch.isfinite(codes.float())]
    return codes[: codes.numel() // 256 * 256].reshape(-1, 256)


def random_f32_bits(g, rows, cols):
    b = torch.randint(-(2 ** 31), 2 ** 31 - 1, (rows * cols * 2,), generator=g, dtype=torch.int64).to(torch.int32)
    f = b.view(torch.float32)
    f = f[torch.isfinite(f)][: rows * cols]
    return f.reshape(rows, cols)


def cases(g):
    for name, dtype in TYPES.items():
        yield name, "special", special(dtype)
        yield name, "random", random_rows(dtype, g, 32, 999)
        for cols in (1, 7, 31, 33, 65):
            yield name, "narrow%d" % cols, random_rows(dtype, g, 9, cols)
        if dtype in (torch.bfloat16, torch.float16):
            p = finite_patterns(dtype)
            yield name, "patterns", p
            pick = torch.randperm(p.numel(), generator=g)[: p.shape[0] // 2 * 256]
            yield name, "shuffled", p.flatten()[pick].reshape(-1, 256)
        if dtype == torch.float32:
            yield name, "bits", random_f32_bits(g, 128, 256)


def raw(t):
    view = INT_VIEW.get(t.dtype)
    return (t.contiguous().view(view) if view else t.contiguous()).numpy().tobytes()


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20261203)
    index = []
    for dtype, case, w in cases(g):
        q, scale = rtn_int8(w)
        stem = "%s_%s" % (dtype.lower(), case)
        for suffix, t in (("weight", w), ("q", q), ("scale", scale)):
            with open(os.path.join(OUT, "%s.%s" % (stem, suffix)), "wb") as f:
                f.write(raw(t))
        index.append({"name": stem, "dtype": dtype, "rows": w.shape[0], "cols": w.shape[1]})
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
