#!/usr/bin/env python3
"""Golden values for the cast and fp8 kernels, from real torch (Debian python3-torch 1.13).

Run once: /usr/bin/python3 make_golden.py; the outputs are committed and the tests
(tests/test_cast.c, tests/test_fp8.c) need no Python.

What comes from where:
  - every bf16 and f16 bit pattern, a boundary set of f32 and f64 patterns, and
    4,000,000 pseudo-random f32 patterns (2,000,000 of any bits, 2,000,000 with
    exponents inside the narrow types' ranges), converted by torch's .to() to each
    narrower type torch has (f32, f16, bf16);
  - conversions to fp8 (e4m3fn, e5m2), which torch 1.13 lacks (float8 dtypes came
    in torch 2.1), by an independent method: a nearest-value search over the 256
    codes' exact values (ties to the even code), after torch's own rounding to
    float for f64 inputs.  Overflow gives what torch >= 2.1 gives: infinity in
    e5m2, NaN in e4m3fn (which has no infinity);
  - the 256 fp8 codes decoded from the OCP FP8 definitions (checked below against
    the OCP specification's table of special values, and e5m2 against torch's
    own f16 decoder, since an e5m2 code is the top byte of an f16), then
    widened by torch;
  - block-scaled fp8 dequantization (DeepSeek-V3 weight + weight_scale_inv):
    torch's (w.float() * scale_of_its_block).to(dtype) on a 130 x 260 e4m3
    weight in 128 x 128 blocks, so that edge blocks are partial.
NaN results are replaced by the target's canonical quiet NaN with the input's sign
(0x7E00, 0x7FC0, 0x7FC00000, 0x7F for both fp8 types as torch >= 2.1 gives), the
rule libckpt documents: torch 1.13 itself is inconsistent there (0xFFFF from f32 to
bf16, 0x7FC0 from f16 to bf16, both dropping the sign).

Random inputs are splitmix64 outputs from seed 0, the same sequence tests/test_cast.c
generates: the first 2,000,000 give f32 patterns (low 32 bits) and f64 patterns
(all 64 bits, first 200,000), the next 2,000,000 give in-range f32 patterns (see
in_range_f32).  Their outputs are kept as FNV-1a 64-bit checksums in golden.json
rather than as 12 MB of raw bytes: the tests recompute the inputs, convert, hash.
"""
import json
import math
import os

import numpy as np
import torch

OUT = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1
RANDOM_F32 = 2_000_000
RANDOM_F64 = 200_000
IN_RANGE_F32 = 2_000_000


def splitmix64(n):
    return splitmix64_from(0, n)


def splitmix64_from(state, n):
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out[i] = z ^ (z >> 31)
    return out


def fnv1a64_np(arr) -> str:
    """FNV-1a, 64 bits, over the array's bytes."""
    data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    for b in data.tobytes():
        h = ((h ^ b) * prime) & M64
    return "%016x" % h


# ---- fp8 by nearest-value search ----

FP8 = {
    # name: (exponent bits, mantissa bits, bias, has infinity)
    "e4m3": (4, 3, 7, False),
    "e5m2": (5, 2, 15, True),
}
CANONICAL_NAN = {"e4m3": 0x7F, "e5m2": 0x7F, "f16": 0x7E00, "bf16": 0x7FC0, "f32": 0x7FC00000}


def fp8_value(code, fmt):
    e_bits, m_bits, bias, has_inf = FP8[fmt]
    sign = -1.0 if code & 0x80 else 1.0
    e = (code >> m_bits) & ((1 << e_bits) - 1)
    m = code & ((1 << m_bits) - 1)
    top = (1 << e_bits) - 1
    if has_inf and e == top:
        return sign * math.inf if m == 0 else math.copysign(math.nan, sign)
    if not has_inf and e == top and m == (1 << m_bits) - 1:
        return math.copysign(math.nan, sign)
    if e == 0:
        return sign * m * 2.0 ** (1 - bias - m_bits)
    return sign * (1 + m / 2 ** m_bits) * 2.0 ** (e - bias)


def check_fp8_decoding():
    """The OCP FP8 specification's table of special values, by hand, and e5m2 against torch's f16."""
    spec = {
        "e4m3": {0x00: 0.0, 0x80: -0.0, 0x01: 2.0 ** -9, 0x07: 0.875 * 2.0 ** -6, 0x08: 2.0 ** -6,
                 0x38: 1.0, 0x7E: 448.0, 0xFE: -448.0, 0x77: 240.0, 0x40: 2.0},
        "e5m2": {0x00: 0.0, 0x80: -0.0, 0x01: 2.0 ** -16, 0x03: 0.75 * 2.0 ** -14, 0x04: 2.0 ** -14,
                 0x3C: 1.0, 0x7B: 57344.0, 0xFB: -57344.0, 0x7C: math.inf, 0xFC: -math.inf},
    }
    nans = {"e4m3": [0x7F, 0xFF], "e5m2": [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF]}
    for fmt, table in spec.items():
        for code, want in table.items():
            got = fp8_value(code, fmt)
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (fmt, hex(code), got)
        for code in range(256):
            assert math.isnan(fp8_value(code, fmt)) == (code in nans[fmt]), (fmt, hex(code))
    as_f16 = torch.tensor([c << 8 for c in range(256)], dtype=torch.int32).to(torch.int16).view(torch.float16)
    for code, v in enumerate(as_f16.to(torch.float64).tolist()):
        mine = fp8_value(code, "e5m2")
        assert (math.isnan(v) and math.isnan(mine)) or v == mine, (hex(code), v, mine)


def fp8_encoder(fmt):
    """Vectorised nearest search over the non-negative finite codes; returns (codes for |x|, overflow code)."""
    e_bits, m_bits, bias, has_inf = FP8[fmt]
    finite = [(fp8_value(c, fmt), c) for c in range(0x80) if math.isfinite(fp8_value(c, fmt))]
    finite.sort()
    values = np.array([v for v, _ in finite])
    codes = np.array([c for _, c in finite])
    # one step past the largest finite value: the value the next code would have
    step = values[-1] - values[-2]
    beyond = values[-1] + step
    overflow_code = 0x7C if has_inf else 0x7F   # torch: infinity, or NaN for e4m3fn

    def encode(x):
        x = np.asarray(x, dtype=np.float64)
        a = np.abs(x)
        grid = np.append(values, beyond)
        gcode = np.append(codes, overflow_code)
        hi = np.clip(np.searchsorted(grid, a, side="left"), 1, len(grid) - 1)
        lo = hi - 1
        dlo, dhi = a - grid[lo], grid[hi] - a
        # ties go to the even code; the code past the largest finite one is 0x7F (odd) in e4m3 and
        # 0x7C (even: infinity) in e5m2, exactly the next bit pattern up
        pick_hi = (dhi < dlo) | ((dhi == dlo) & ((gcode[hi] & 1) == 0))
        out = np.where(pick_hi, gcode[hi], gcode[lo])
        out = np.where(a >= beyond, overflow_code, out)
        out = np.where(np.isinf(a), 0x7C if has_inf else 0x7F, out)
        out = np.where(np.isnan(a), CANONICAL_NAN[fmt], out)
        sign = np.signbit(x).astype(np.int64) << 7
        return (out | sign).astype(np.uint8)

    return encode


ENC = {f: fp8_encoder(f) for f in FP8}


# ---- torch conversions with NaNs canonical ----

def torch_cast(x: torch.Tensor, dtype, name):
    y = x.to(dtype)
    bits = y.view({torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}[dtype])
    bits = bits.numpy().view({torch.int16: np.uint16, torch.int32: np.uint32}[bits.dtype]).copy()
    nan = torch.isnan(x).numpy()
    sign = np.signbit(x.to(torch.float64).numpy())
    width = 15 if dtype != torch.float32 else 31
    canon = (np.uint64(CANONICAL_NAN[name]) | (sign.astype(np.uint64) << np.uint64(width))).astype(bits.dtype)
    bits[nan] = canon[nan]
    return bits


def write(name, arr):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(np.ascontiguousarray(arr).tobytes())


def boundary_f32():
    mants = [0, 1, 2, 3, 0x7FFFFF, 0x7FFFFE, 0x400000, 0x3FFFFF, 0x400001, 0x1000, 0x0FFF, 0x1001, 0x2000,
             0x3000, 0x1FFF, 0x5000, 0x7FE000, 0x7FF000, 0x7FEFFF, 0x7FF001, 0x8000, 0x7FFF, 0x8001, 0x10000,
             0x18000, 0x17FFF, 0x18001, 0x7F8000, 0x7F7FFF, 0x7F8001, 0x100000, 0x080000, 0x0C0000, 0x0BFFFF,
             0x0C0001, 0x040000, 0x03FFFF, 0x040001, 0x200000, 0x1FFFFF]
    pats = [(s << 31) | (e << 23) | m for s in (0, 1) for e in range(256) for m in mants]
    return np.array(pats, dtype=np.uint32)


def boundary_f64():
    # f32 boundaries widened, plus doubles just around them (double-rounding cases) and huge values
    b = boundary_f32().view(np.float32).astype(np.float64)
    b = b[np.isfinite(b)]
    near = np.concatenate([np.nextafter(b, np.inf), np.nextafter(b, -np.inf), b * (1 + 2.0 ** -40)])
    extra = np.array([1e300, -1e300, 3.5e38, -3.5e38, 1e-300, 5e-324, 65520.0, 65519.999999, 1 + 2.0 ** -11 + 2.0 ** -40])
    return np.concatenate([b, near, extra])


def in_range_f32(r):
    """Sign and mantissa from the random bits, the exponent field in [96, 151]: 2^-31 .. 2^24,
    the ranges of f16, bf16 and both fp8 types with their subnormals and overflows."""
    bits = r & np.uint64(0x807FFFFF)
    exp = np.uint64(96) + (r >> np.uint64(32)) % np.uint64(56)
    return (bits | (exp << np.uint64(23))).astype(np.uint32)


def fp8_dequant_goldens():
    """A 130 x 260 e4m3 weight (random codes, NaNs included) with 128 x 128 blocks: scales [2, 3].
    The scales mix DeepSeek-V3-like magnitudes with ones that overflow f16 and flush to zero."""
    rows, cols, block = 130, 260, 128
    codes = (splitmix64_from(12345, rows * cols) & np.uint64(0xFF)).astype(np.uint8)
    scales = np.array([[3.0517578e-05, 0.0123, 300.0], [1.7e-7, 1.0, 2.5e-3]], dtype=np.float32)
    table = torch.tensor([fp8_value(c, "e4m3") for c in range(256)], dtype=torch.float32)
    w = table[torch.from_numpy(codes.astype(np.int64))].reshape(rows, cols)
    s = torch.from_numpy(scales).repeat_interleave(block, 0)[:rows].repeat_interleave(block, 1)[:, :cols]
    product = w * s   # torch: (w.float() * scale_of_its_block)
    write("fp8_weight_e4m3.bin", codes)
    write("fp8_scales.bin", scales)
    write("fp8_dequant_to_f32.bin", torch_cast(product, torch.float32, "f32"))
    write("fp8_dequant_to_bf16.bin", torch_cast(product, torch.bfloat16, "bf16"))
    write("fp8_dequant_to_f16.bin", torch_cast(product, torch.float16, "f16"))


def main():
    np.seterr(invalid="ignore")   # widening signalling-NaN patterns warns; the NaN is what is wanted
    check_fp8_decoding()
    golden = {}
    all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    bf16 = torch.from_numpy(all16.view(np.int16)).view(torch.bfloat16)
    f16 = torch.from_numpy(all16.view(np.int16)).view(torch.float16)
    write("bf16_to_f16.bin", torch_cast(bf16, torch.float16, "f16"))
    write("f16_to_bf16.bin", torch_cast(f16, torch.bfloat16, "bf16"))
    for fmt in FP8:
        write(f"bf16_to_{fmt}.bin", ENC[fmt](bf16.to(torch.float32).numpy()))
        write(f"f16_to_{fmt}.bin", ENC[fmt](f16.to(torch.float32).numpy()))
        values = np.array([fp8_value(c, fmt) for c in range(256)])
        as_f32 = torch.from_numpy(values.astype(np.float32))
        write(f"{fmt}_to_f32.bin", torch_cast(as_f32, torch.float32, "f32"))
        write(f"{fmt}_to_bf16.bin", torch_cast(as_f32, torch.bfloat16, "bf16"))
        write(f"{fmt}_to_f16.bin", torch_cast(as_f32, torch.float16, "f16"))

    b32 = boundary_f32()
    x = torch.from_numpy(b32.view(np.float32).copy())
    write("f32b_to_f16.bin", torch_cast(x, torch.float16, "f16"))
    write("f32b_to_bf16.bin", torch_cast(x, torch.bfloat16, "bf16"))
    for fmt in FP8:
        write(f"f32b_to_{fmt}.bin", ENC[fmt](x.numpy()))

    b64 = boundary_f64()
    write("f64b_inputs.bin", b64)
    x = torch.from_numpy(b64)
    write("f64b_to_f32.bin", torch_cast(x, torch.float32, "f32"))
    write("f64b_to_f16.bin", torch_cast(x, torch.float16, "f16"))
    write("f64b_to_bf16.bin", torch_cast(x, torch.bfloat16, "bf16"))
    for fmt in FP8:   # torch narrows through float: so does the reference
        write(f"f64b_to_{fmt}.bin", ENC[fmt](x.to(torch.float32).numpy()))

    r = splitmix64(RANDOM_F32 + IN_RANGE_F32)
    r32 = (r[:RANDOM_F32] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x = torch.from_numpy(r32.view(np.float32).copy())
    golden["random_f32_count"] = RANDOM_F32
    golden["random_f32_to_f16_fnv"] = fnv1a64_np(torch_cast(x, torch.float16, "f16"))
    golden["random_f32_to_bf16_fnv"] = fnv1a64_np(torch_cast(x, torch.bfloat16, "bf16"))
    for fmt in FP8:
        golden[f"random_f32_to_{fmt}_fnv"] = fnv1a64_np(ENC[fmt](x.numpy()))
    x = torch.from_numpy(in_range_f32(r[RANDOM_F32:]).view(np.float32).copy())
    golden["in_range_f32_count"] = IN_RANGE_F32
    golden["in_range_f32_to_f16_fnv"] = fnv1a64_np(torch_cast(x, torch.float16, "f16"))
    golden["in_range_f32_to_bf16_fnv"] = fnv1a64_np(torch_cast(x, torch.bfloat16, "bf16"))
    for fmt in FP8:
        golden[f"in_range_f32_to_{fmt}_fnv"] = fnv1a64_np(ENC[fmt](x.numpy()))
    x64 = torch.from_numpy(r[:RANDOM_F64].view(np.float64).copy())
    golden["random_f64_count"] = RANDOM_F64
    golden["random_f64_to_f32_fnv"] = fnv1a64_np(torch_cast(x64, torch.float32, "f32"))
    golden["random_f64_to_f16_fnv"] = fnv1a64_np(torch_cast(x64, torch.float16, "f16"))
    golden["random_f64_to_bf16_fnv"] = fnv1a64_np(torch_cast(x64, torch.bfloat16, "bf16"))
    fp8_dequant_goldens()
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
