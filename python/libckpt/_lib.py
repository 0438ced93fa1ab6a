"""The shared library, found and described to ctypes: struct mirrors and function prototypes.

Option structs start with ``size_t size`` and grow only at their end (ckpt.h): each is filled by
its C ``_default()`` function in a buffer larger than any version of it, so that fields this
module does not know keep the library's defaults, and only the leading fields mirrored here are
changed.  Structs without a size field (tensors, findings, summaries) are stable by the header's
rule and mirrored whole.
"""
import ctypes
import ctypes.util
import os

from .errors import error_for

c_char_p, c_int, c_void_p, c_size_t = ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
c_uint32, c_uint64, c_double, c_uint = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_double, ctypes.c_uint

ERROR_MESSAGE_MAX = 512


class Error(ctypes.Structure):
    _fields_ = [("code", c_int), ("message", ctypes.c_char * ERROR_MESSAGE_MAX)]


class Limits(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("max_header_bytes", c_uint64), ("max_tensors", c_uint64),
                ("max_rank", c_uint32), ("max_pickle_bytes", c_uint64), ("max_archive_bytes", c_uint64),
                ("max_bundle_header_bytes", c_uint64), ("max_expansion", c_uint64)]


class Event(ctypes.Structure):
    _fields_ = [("kind", c_int), ("path", c_char_p), ("file", c_char_p), ("tensor", c_char_p),
                ("done", c_uint64), ("total", c_uint64)]


EVENT_FN = ctypes.CFUNCTYPE(c_int, c_void_p, ctypes.POINTER(Event))
PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64)


class OpenOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("limits", Limits), ("deepspeed_weights", c_int), ("events", EVENT_FN),
                ("events_payload", c_void_p), ("experts", c_int)]


class Tensor(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("dtype", c_int), ("rank", c_uint32), ("shape", ctypes.POINTER(c_uint64)),
                ("nbytes", c_uint64), ("file", c_uint32), ("alias_of", c_char_p)]


class Object(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("kind", c_char_p), ("value", c_char_p)]


class CastCounts(ctypes.Structure):
    _fields_ = [("overflowed", c_uint64), ("subnormal", c_uint64), ("flushed", c_uint64)]


class Finding(ctypes.Structure):
    _fields_ = [("check", c_int), ("ok", c_int), ("file", c_char_p), ("tensor", c_char_p), ("message", c_char_p),
                ("max_abs_error", c_double), ("max_rel_error", c_double), ("mismatched", c_uint64),
                ("counts", CastCounts), ("quant", c_int), ("sqnr_db", c_double), ("option", c_char_p),
                ("value", c_char_p), ("origin", c_char_p)]


FINDING_FN = ctypes.CFUNCTYPE(c_int, c_void_p, ctypes.POINTER(Finding))
SUM_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, c_char_p, c_char_p)


class ConvertOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("target", c_int), ("dtype", c_int), ("nz", c_int), ("overflow", c_int),
                ("rules", c_char_p), ("rules_origin", c_char_p), ("rename", c_char_p),
                ("max_shard_bytes", c_uint64), ("max_memory", c_uint64), ("jobs", c_uint), ("force", c_int),
                ("part", c_uint), ("parts", c_uint), ("quant", c_int), ("nz_fp32_c0", c_uint)]


class ConvertStats(ctypes.Structure):
    _fields_ = [("tensors", c_uint64), ("bytes_in", c_uint64), ("bytes_out", c_uint64), ("seconds", c_double),
                ("counts", CastCounts)]


class VerifyOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("against", c_char_p), ("max_abs_error", c_double),
                ("max_rel_error", c_double), ("jobs", c_uint), ("max_memory", c_uint64),
                ("open", ctypes.POINTER(OpenOptions)), ("progress", PROGRESS_FN), ("progress_payload", c_void_p),
                ("convert", ctypes.POINTER(ConvertOptions))]


class VerifySummary(ctypes.Structure):
    _fields_ = [("checks", c_uint64), ("failures", c_uint64), ("bytes", c_uint64), ("seconds", c_double)]


class DiffOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("names_only", c_int), ("max_abs_error", c_double),
                ("max_rel_error", c_double), ("open", ctypes.POINTER(OpenOptions)), ("events", EVENT_FN),
                ("events_payload", c_void_p)]


class SumsOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("format", c_int), ("jobs", c_uint), ("progress", PROGRESS_FN),
                ("progress_payload", c_void_p), ("ignore_missing", c_int)]


class ManifestOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("open", ctypes.POINTER(OpenOptions)), ("jobs", c_uint),
                ("progress", PROGRESS_FN), ("progress_payload", c_void_p)]


# bytes reserved for an option struct: far more than any version of one (the largest is ~150 bytes)
OPTION_BUFFER = 4096

P = ctypes.POINTER
PROTOTYPES = {
    "ckpt_version": (c_char_p, []),
    "ckpt_status_name": (c_char_p, [c_int]),
    "ckpt_dtype_name": (c_char_p, [c_int]),
    "ckpt_dtype_size": (c_size_t, [c_int]),
    "ckpt_open_options_default": (None, [c_void_p]),
    "ckpt_source_open_ext": (c_int, [P(c_void_p), c_char_p, c_void_p, P(Error)]),
    "ckpt_source_free": (None, [c_void_p]),
    "ckpt_source_path": (c_char_p, [c_void_p]),
    "ckpt_source_format": (c_char_p, [c_void_p]),
    "ckpt_source_file_count": (c_size_t, [c_void_p]),
    "ckpt_source_file_path": (c_char_p, [c_void_p, c_size_t]),
    "ckpt_source_file_size": (c_uint64, [c_void_p, c_size_t]),
    "ckpt_source_tensor_count": (c_size_t, [c_void_p]),
    "ckpt_source_tensor": (P(Tensor), [c_void_p, c_size_t]),
    "ckpt_source_metadata_count": (c_size_t, [c_void_p]),
    "ckpt_source_metadata": (None, [c_void_p, c_size_t, P(c_char_p), P(c_char_p)]),
    "ckpt_source_object_count": (c_size_t, [c_void_p]),
    "ckpt_source_object": (P(Object), [c_void_p, c_size_t]),
    "ckpt_source_read": (c_int, [c_void_p, c_size_t, c_uint64, c_uint64, c_void_p, c_size_t, P(Error)]),
    "ckpt_target_from_name": (c_int, [c_char_p]),
    "ckpt_float_type_parse": (c_int, [c_char_p, P(c_int)]),
    "ckpt_quant_parse": (c_int, [c_char_p, P(c_int)]),
    "ckpt_quant_name": (c_char_p, [c_int]),
    "ckpt_convert_options_default": (None, [c_void_p]),
    "ckpt_plan_build": (c_int, [P(c_void_p), c_void_p, c_char_p, c_void_p, P(Error)]),
    "ckpt_plan_free": (None, [c_void_p]),
    "ckpt_plan_execute": (c_int, [c_void_p, PROGRESS_FN, c_void_p, P(ConvertStats), P(Error)]),
    "ckpt_plan_cancel": (None, [c_void_p]),
    "ckpt_verify_options_default": (None, [c_void_p]),
    "ckpt_verify": (c_int, [c_char_p, c_void_p, FINDING_FN, c_void_p, P(VerifySummary), P(Error)]),
    "ckpt_diff_options_default": (None, [c_void_p]),
    "ckpt_diff": (c_int, [c_char_p, c_char_p, c_void_p, FINDING_FN, c_void_p, P(VerifySummary), P(Error)]),
    "ckpt_sums_options_default": (None, [c_void_p]),
    "ckpt_sums": (c_int, [c_char_p, c_void_p, SUM_FN, c_void_p, P(Error)]),
    "ckpt_verify_sums": (c_int, [c_char_p, c_char_p, c_void_p, FINDING_FN, c_void_p, P(VerifySummary), P(Error)]),
    "ckpt_manifest_options_default": (None, [c_void_p]),
    "ckpt_manifest_create": (c_int, [c_char_p, c_void_p, P(c_void_p), P(Error)]),
    "ckpt_free": (None, [c_void_p]),
}


def _candidates():
    """Where the library is looked for, first found first used."""
    env = os.environ.get("LIBCKPT_LIBRARY")
    if env:
        yield env   # an explicit choice: no fallback hides a wrong one
        return
    # an in-tree checkout: python/libckpt/ beside build/ at the top of the repository
    here = os.path.dirname(os.path.abspath(__file__))
    tree = os.path.join(here, os.pardir, os.pardir, "build", "libckpt.so.0")
    if os.path.exists(tree):
        yield os.path.normpath(tree)
    found = ctypes.util.find_library("ckpt")
    if found:
        yield found
    yield "libckpt.so.0"   # the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.conf)


def _load():
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(lib, name, None)
            if fn is None:
                raise ImportError(f"{path}: has no {name}: a libckpt older than this binding")
            fn.restype, fn.argtypes = restype, argtypes
        return lib, path
    raise ImportError("libckpt shared library not found; tried " + "; ".join(tried) +
                      ". Set LIBCKPT_LIBRARY to its path (for example build/libckpt.so.0), or `make install` it")


lib, path = _load()


def options(default_fn, mirror):
    """A C option struct filled by its _default() function, viewed through `mirror` (its leading fields)."""
    buf = ctypes.create_string_buffer(OPTION_BUFFER)
    default_fn(buf)
    size = c_size_t.from_buffer(buf).value
    if size < ctypes.sizeof(c_size_t) or size > OPTION_BUFFER:
        raise ImportError(f"{path}: {default_fn.__name__} set size {size}: not a libckpt this binding knows")
    view = mirror.from_buffer(buf)
    view._buffer = buf   # keeps the bytes alive with the view
    if size < ctypes.sizeof(mirror):
        raise ImportError(f"{path}: {mirror.__name__} is {size} bytes, smaller than this binding's "
                          f"{ctypes.sizeof(mirror)}: a libckpt older than this binding")
    return view


def text(b):
    return None if b is None else b.decode("utf-8", "surrogateescape")


def encode(s):
    return None if s is None else os.fsencode(s) if not isinstance(s, bytes) else s


def check(rc, err):
    """Raises the exception for a failed call's status and message."""
    if rc != 0:
        raise error_for(rc, lib.ckpt_status_name(rc).decode(), text(err.message))
