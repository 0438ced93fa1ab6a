"""save_safetensors: a safetensors file written by hand from the format description, so that
the fixture generators (make_sample.py, */make_fixtures.py) need no safetensors package."""
import json
import struct

import torch

DTYPES = {torch.float32: ("F32", torch.int32, "<i4"), torch.bfloat16: ("BF16", torch.int16, "<i2"),
          torch.float16: ("F16", torch.int16, "<i2"), torch.int64: ("I64", torch.int64, "<i8"),
          torch.int8: ("I8", torch.int8, "<i1"), torch.uint8: ("U8", torch.uint8, "<u1")}


class Raw:
    """A tensor given as its safetensors dtype name, shape and little-endian bytes (types torch lacks: F8_E4M3)."""

    def __init__(self, dtype, shape, data):
        self.dtype, self.shape, self.data = dtype, list(shape), bytes(data)


def save_safetensors(path, named, metadata=None):
    """Writes (name, tensor or Raw) pairs in order, little-endian, with optional string metadata."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, tensor in named:
        if isinstance(tensor, Raw):
            dtype, shape, raw = tensor.dtype, tensor.shape, tensor.data
        else:
            dtype, bits, little = DTYPES[tensor.dtype]
            raw = tensor.detach().contiguous().view(bits).numpy().astype(little).tobytes()
            shape = list(tensor.shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
