#!/usr/bin/python3
"""python_route.py SRC DST: the straightforward Python conversion bench/torch_convert.sh times
against `ckpt convert --target ascend-310p`: every .bin shard of SRC torch.load-ed, each tensor
made float16, each matrix made FRACTAL_NZ by padding and reshape/permute, each shard torch.save-d
into DST.  Only for that comparison; nothing in libckpt needs Python."""
import os
import sys

import torch


def fractal_nz(t):
    """(M, N) -> (ceil(N/16), 16*ceil(M/16), 16): 16 x 16 tiles, column blocks outermost."""
    m, n = t.shape
    mp, np_ = -(-m // 16) * 16, -(-n // 16) * 16
    t = torch.nn.functional.pad(t, (0, np_ - n, 0, mp - m))
    return t.reshape(mp, np_ // 16, 16).permute(1, 0, 2).contiguous()


def main(src, dst):
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if not name.endswith(".bin"):
            continue
        state = torch.load(os.path.join(src, name), map_location="cpu")
        out = {}
        for key, tensor in state.items():
            half = tensor.half()
            out[key] = fractal_nz(half) if half.dim() == 2 else half
        del state
        torch.save(out, os.path.join(dst, name))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
