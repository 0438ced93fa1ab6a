#!/usr/bin/env python3
"""Hostile files written by real torch.save, for tests/hostile.sh.  Expansion bombs: torch.save keeps a view as its storage
plus (offset, size, stride) (torch/_tensor.py, Tensor._reduce_ex_internal: torch._utils._rebuild_tensor_v2,
(self.storage(), self.storage_offset(), tuple(self.size()), self.stride(), ...)), so a stride-0 view of a
16-byte storage is a file of a few hundred bytes that presents terabytes.  Run once with /usr/bin/python3
(Debian's python3-torch); the outputs are committed.  inspect, convert and diff must refuse each with
exit 3 (limit max_expansion) at once, not stream the logical size.  A state dict whose key holds a NUL
byte (torch.save pickles any str key: pickle.py, save_unicode writes its UTF-8 bytes whole): a C string
would cut it to "model.weight", so it must be refused, never read as that name.
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, tensor):
    # a file object, not a path: the archive's folder is then "archive", the same bytes whatever the name
    with open(os.path.join(HERE, name), "wb") as f:
        torch.save({"weight": tensor}, f)


def main():
    four = torch.tensor([1.0, 2.0, 3.0, 4.0])            # a 16-byte storage
    # 2^20 x 2^20 repeats of the four floats (stride 0, as Tensor.expand makes): 16 TiB
    save("expansion-bomb.pt", four.expand(1 << 20, 1 << 20, 4))
    # 2^62 - 1 floats of stride 0: 16 EiB less 4 bytes, the largest size 64 bits hold
    save("expansion-bomb-16eib.pt", four[:1].as_strided(((1 << 62) - 1,), (0,)))
    with open(os.path.join(HERE, "nul-key.pt"), "wb") as f:
        torch.save({"model.weight\0.hidden": four}, f)


if __name__ == "__main__":
    main()
