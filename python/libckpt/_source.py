"""Sources: a checkpoint opened read-only, its tensors listed and read into numpy arrays."""
import collections.abc
import ctypes

import numpy as np

from . import _lib
from ._lib import lib

try:   # the types numpy lacks; without ml_dtypes they are read as their raw bits (see DTYPES)
    import ml_dtypes
except ImportError:   # pragma: no cover - depends on the machine
    ml_dtypes = None


def _ml(name, fallback):
    return np.dtype(getattr(ml_dtypes, name)) if ml_dtypes is not None and hasattr(ml_dtypes, name) else fallback


# safetensors dtype name -> numpy dtype of the array read (little-endian, as the library returns it).
# BF16 and the fp8 types are ml_dtypes' types when it is installed, else unsigned integers holding
# the raw bits (uint16 for BF16: float32 value = bits << 16, see bf16_to_float32).
DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "BF16": _ml("bfloat16", np.dtype("<u2")),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "F8_E4M3": _ml("float8_e4m3fn", np.dtype("u1")),
    "F8_E5M2": _ml("float8_e5m2", np.dtype("u1")), "F8_E8M0": _ml("float8_e8m0fnu", np.dtype("u1")),
    "F8_E4M3FNUZ": _ml("float8_e4m3fnuz", np.dtype("u1")), "F8_E5M2FNUZ": _ml("float8_e5m2fnuz", np.dtype("u1")),
    "C64": np.dtype("<c8"),
}


def bf16_to_float32(bits):
    """The float32 values of BF16 raw bits (a uint16 array, as read without ml_dtypes): exact."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class Tensor:
    """One tensor of a source: `name`, `dtype` (the safetensors name, e.g. "BF16"), `shape` (a tuple),
    `nbytes`, `file` (the path of the file holding it), `alias_of` (the tensor whose data it shares, or
    None), and `numpy_dtype`, the dtype of the array `read` returns."""

    __slots__ = ("source", "index", "name", "dtype", "shape", "nbytes", "file", "alias_of")

    def __init__(self, source, index, t):
        self.source, self.index = source, index
        self.name = _lib.text(t.name)
        self.dtype = _lib.text(lib.ckpt_dtype_name(t.dtype))
        self.shape = tuple(t.shape[d] for d in range(t.rank))
        self.nbytes = t.nbytes
        self.file = source.files[t.file][0] if t.file < len(source.files) else None
        self.alias_of = _lib.text(t.alias_of)

    @property
    def numpy_dtype(self):
        return DTYPES[self.dtype]

    @property
    def rows(self):
        """Rows of the first dimension (1 for a scalar): what `read(rows=...)` slices."""
        return self.shape[0] if self.shape else 1

    def read(self, rows=None, out=None):
        return self.source.read(self.name, rows, out)

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.dtype}, {list(self.shape)})"


class Tensors(collections.abc.Mapping):
    """name -> Tensor, in the source's storage order."""

    def __init__(self, items):
        self._items = items
        self._by_name = {t.name: t for t in items}

    def __getitem__(self, name):
        return self._by_name[name]

    def __iter__(self):
        return (t.name for t in self._items)

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return f"<{len(self)} tensors>"


def _rows_of(rows, count):
    """(first, n) of a rows argument: None (all), a slice with step 1, a (start, stop) pair, or an int."""
    if rows is None:
        return 0, count
    if isinstance(rows, int):
        index = rows + count if rows < 0 else rows
        if not 0 <= index < count:
            raise IndexError(f"row {rows} of {count}")
        rows = slice(index, index + 1)
    elif isinstance(rows, tuple) and len(rows) == 2:
        rows = slice(*rows)
    if not isinstance(rows, slice):
        raise TypeError("rows takes None, an int, a slice or a (start, stop) pair")
    start, stop, step = rows.indices(count)
    if step != 1:
        raise ValueError("rows must be consecutive (a slice with step 1)")
    return start, max(0, stop - start)


class Source:
    """An open checkpoint (libckpt.open): immutable, readable from several threads at once.

    `path`, `format`, `files` (a list of (path, size)), `metadata` (a dict of strings), `objects`
    (non-tensor values: name -> (kind, value text)), `tensors` (name -> Tensor).  Use as a context
    manager, or call close(); arrays already read stay valid."""

    def __init__(self, path, deepspeed_weights=None, experts=None, on_event=None, **limits):
        opts = _lib.options(lib.ckpt_open_options_default, _lib.OpenOptions)
        raised = []

        def event(payload, e):   # ckpt_event_fn: ("file", path, files so far) or ("tensor", name, tensors so far)
            e = e.contents
            try:
                if e.kind == 0:
                    return 1 if on_event("file", _lib.text(e.file), e.done) else 0
                return 1 if on_event("tensor", _lib.text(e.tensor), e.done) else 0
            except BaseException as exc:   # noqa: B902 - re-raised after the open stops
                raised.append(exc)
                return 1
        if on_event is not None:
            keep_event = _lib.EVENT_FN(event)
            opts.events = keep_event
        for what, value, choices in (("deepspeed_weights", deepspeed_weights, {"fp32": 0, "module": 1}),
                                     ("experts", experts, {"as_stored": 0, "split": 1})):
            if value is not None:
                if value not in choices:
                    raise ValueError(f"{what} takes {' or '.join(map(repr, choices))}, not {value!r}")
                setattr(opts, what, choices[value])
        for key, value in limits.items():
            field = key if key.startswith("max_") else None
            if field is None or field not in dict(_lib.Limits._fields_):
                names = ", ".join(n for n, _ in _lib.Limits._fields_ if n != "size")
                raise TypeError(f"open() got an unexpected keyword {key!r} (limits: {names})")
            setattr(opts.limits, field, int(value))
        handle = ctypes.c_void_p()
        err = _lib.Error()
        rc = lib.ckpt_source_open_ext(ctypes.byref(handle), _lib.encode(path), ctypes.byref(opts), ctypes.byref(err))
        if raised:
            raise raised[0]
        _lib.check(rc, err)
        self._handle = handle
        self.path = _lib.text(lib.ckpt_source_path(handle))
        self.format = _lib.text(lib.ckpt_source_format(handle))
        self.files = [(_lib.text(lib.ckpt_source_file_path(handle, i)), lib.ckpt_source_file_size(handle, i))
                      for i in range(lib.ckpt_source_file_count(handle))]
        self.metadata = {}
        for i in range(lib.ckpt_source_metadata_count(handle)):
            key, value = ctypes.c_char_p(), ctypes.c_char_p()
            lib.ckpt_source_metadata(handle, i, ctypes.byref(key), ctypes.byref(value))
            self.metadata[_lib.text(key.value)] = _lib.text(value.value)
        self.objects = {}
        for i in range(lib.ckpt_source_object_count(handle)):
            o = lib.ckpt_source_object(handle, i).contents
            self.objects[_lib.text(o.name)] = (_lib.text(o.kind), _lib.text(o.value))
        self.tensors = Tensors([Tensor(self, i, lib.ckpt_source_tensor(handle, i).contents)
                                for i in range(lib.ckpt_source_tensor_count(handle))])

    def read(self, name, rows=None, out=None):
        """The logical values of tensor `name` (or rows `rows` of its first dimension) as a numpy array,
        whatever the layout on disk: a new array, row-major, of the tensor's `numpy_dtype`; or written
        into `out`, a C-contiguous writable array of that shape and item size, which is returned."""
        if self._handle is None:
            raise ValueError("read from a closed source")
        t = self.tensors[name]
        first, n = _rows_of(rows, t.rows)
        shape = ((n,) + t.shape[1:]) if t.shape else ()
        if out is None:
            out = np.empty(shape, dtype=t.numpy_dtype)
        elif (not isinstance(out, np.ndarray) or out.shape != shape or out.itemsize != t.numpy_dtype.itemsize
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writable C-contiguous array of shape {shape} and "
                             f"{t.numpy_dtype.itemsize}-byte items")
        if out.nbytes:
            err = _lib.Error()
            _lib.check(lib.ckpt_source_read(self._handle, t.index, first, n, out.ctypes.data_as(ctypes.c_void_p),
                                            out.nbytes, ctypes.byref(err)), err)
        return out

    def close(self):
        if self._handle is not None:
            lib.ckpt_source_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            self.close()

    def __repr__(self):
        return f"<libckpt.Source {self.path!r} {self.format}, {len(self.tensors)} tensors>"


def open(path, deepspeed_weights=None, experts=None, on_event=None, **limits):   # noqa: A001 - as io.open
    """Opens a checkpoint file or folder (the format is found from its content): a Source.
    `deepspeed_weights` ("fp32" or "module") chooses a DeepSpeed folder's weights, `experts`
    ("as_stored" or "split") how fused Hugging Face experts are listed; keywords named like
    ckpt_limits' fields (max_tensors=..., max_header_bytes=...) tighten or raise the limits.
    `on_event(kind, name, done)` is told each file mapped ("file", its path, files so far) and each
    tensor catalogued ("tensor", its name, tensors so far) while opening; returning True cancels
    (CancelledError), and an exception it raises is re-raised."""
    return Source(path, deepspeed_weights, experts, on_event, **limits)
