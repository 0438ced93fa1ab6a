"""libckpt: read, convert and verify ML checkpoints for Huawei Ascend, from Python.

A pure ctypes binding over the libckpt shared library (no compiler needed), with numpy arrays
for tensor data::

    import libckpt
    src = libckpt.open("llama-7b/")                   # any format libckpt reads
    w = src.read("model.embed_tokens.weight")         # a numpy array of the logical values
    libckpt.convert(src, "out/", target="ascend-910b", progress=lambda done, total: False)
    assert libckpt.verify("out/", against="llama-7b/")

BF16 and fp8 tensors are read as ml_dtypes arrays when ml_dtypes is installed, else as unsigned
integers of their raw bits (uint16 for BF16; bf16_to_float32 turns them into float32 exactly).
The library is found through $LIBCKPT_LIBRARY, then a build/ folder beside this package (an
in-tree checkout), then the system's (ctypes.util.find_library("ckpt"), libckpt.so.0).
"""
from ._checks import ConvertStats, Finding, Report, convert, diff, manifest, sums, verify
from ._lib import lib as _lib_handle, path as library_path
from ._source import DTYPES, Source, Tensor, bf16_to_float32, open
from .errors import (ArgumentError, CancelledError, Error, ExistsError, FormatError, LimitError, MismatchError,
                     NotFoundError, OutOfMemoryError, ReadError, UnsupportedError, WriteError)

__version__ = "0.1.0"
library_version = _lib_handle.ckpt_version().decode()

__all__ = ["open", "Source", "Tensor", "DTYPES", "bf16_to_float32", "convert", "verify", "diff", "sums", "manifest",
           "ConvertStats", "Finding", "Report", "Error", "ArgumentError", "FormatError", "UnsupportedError",
           "LimitError", "NotFoundError", "ReadError", "WriteError", "ExistsError", "OutOfMemoryError",
           "MismatchError", "CancelledError", "library_path", "library_version"]
