"""convert, verify, diff, and checksum lists: the CLI's jobs as functions, findings as objects."""
import ctypes
import json
import math
import signal
import threading
from dataclasses import dataclass, field

from . import _lib
from ._lib import lib
from ._source import Source
from .errors import MISMATCH

CHECKS = ("file", "extra_file", "header", "tensor", "fidelity", "diff", "option")   # ckpt_check, in order
NZ = {"auto": 0, "all": 1, "none": 2}
OVERFLOW = {"saturate": 0, "inf": 1, "error": 2}
SUMS = {"xxh128": 0, "sha256": 1}


def _choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"{what} takes {', '.join(map(repr, choices))}, not {value!r}")
    return choices[value]


class _Callbacks:
    """Python callables behind C callbacks: an exception raised in one stops the run and is re-raised
    after it, in place of the library's "cancelled" status.  A run started from the main thread goes
    on in a worker thread while the main thread waits, so that Ctrl-C (a notebook's interrupt) is
    seen at once: the run is cancelled through its callbacks (or `cancel`), the library removes
    what it was writing, and KeyboardInterrupt is raised when it has stopped."""

    def __init__(self):
        self.raised = None
        self.interrupted = threading.Event()   # set by Ctrl-C in the waiting main thread
        self.keep = []   # the C function objects, alive until the call returns

    def wrap(self, kind, fn, python):
        def call(*args):
            if self.raised is not None or self.interrupted.is_set():
                return 1
            try:
                stop = python(*args)
            except BaseException as e:   # noqa: B902 - KeyboardInterrupt must stop the run too
                self.raised = e
                return 1
            return 1 if stop or self.interrupted.is_set() else 0
        c = kind(call)
        self.keep.append(c)
        return c

    def progress(self, fn):
        """A progress callback for the library, always installed: it is also how Ctrl-C cancels."""
        return self.wrap(_lib.PROGRESS_FN, fn, lambda payload, done, total: fn(done, total) if fn else False)

    def events(self, fn):
        return self.wrap(_lib.EVENT_FN, fn,
                         lambda payload, e: fn(e.contents.done, e.contents.total) if fn else False)

    def run(self, call, cancel=None):
        """call() (a libckpt call), interruptible by Ctrl-C when made from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return call()
        result, failed, done = [], [], threading.Event()

        def work():
            try:
                result.append(call())
            except BaseException as e:   # noqa: B902 - handed to the caller's thread
                failed.append(e)
            finally:
                done.set()
        # started with SIGINT blocked, which the worker inherits: a Ctrl-C can then only be raised in
        # the loop below, once the mask is restored, never between starting the worker and waiting
        # for it (the run's handles must outlive it)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        threading.Thread(target=work, name="libckpt", daemon=True).start()
        while True:
            try:
                if mask is not None:
                    restore, mask = mask, None
                    signal.pthread_sigmask(signal.SIG_SETMASK, restore)
                # an Event, not Thread.join: a join interrupted by KeyboardInterrupt may report the
                # thread finished while it still runs (CPython issue 90882)
                while not done.is_set():
                    done.wait(0.1)
                break
            except KeyboardInterrupt:
                self.interrupted.set()
                if cancel is not None:
                    cancel()
        if failed:
            raise failed[0]
        return result[0]

    def check(self, rc, err, allowed=(0,)):
        if self.raised is not None:
            raise self.raised
        if self.interrupted.is_set():
            raise KeyboardInterrupt
        if rc not in allowed:
            _lib.check(rc, err)


@dataclass
class Finding:
    """One check's outcome: `check` ("file", "extra_file", "header", "tensor", "fidelity", "diff"),
    `ok`, `file` and `tensor` concerned (or None), `message`; for fidelity and diff findings the
    largest absolute and relative errors, elements whose bits differ, the cast's counts, and for an
    int8 weight its quantization type and SQNR in dB; for an option finding (verify with `against`)
    the conversion option's name, the value proven with and its origin ("options" or "manifest")."""
    check: str
    ok: bool
    file: str = None
    tensor: str = None
    message: str = ""
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    mismatched: int = 0
    counts: dict = field(default_factory=dict)
    quant: str = None
    sqnr_db: float = math.inf
    option: str = None
    value: str = None
    origin: str = None


def _finding(f):
    return Finding(check=CHECKS[f.check] if 0 <= f.check < len(CHECKS) else str(f.check), ok=bool(f.ok),
                   file=_lib.text(f.file), tensor=_lib.text(f.tensor), message=_lib.text(f.message) or "",
                   max_abs_error=f.max_abs_error, max_rel_error=f.max_rel_error, mismatched=f.mismatched,
                   counts={"overflowed": f.counts.overflowed, "subnormal": f.counts.subnormal,
                           "flushed": f.counts.flushed},
                   quant=_lib.text(lib.ckpt_quant_name(f.quant)) if f.quant else None, sqnr_db=f.sqnr_db,
                   option=_lib.text(f.option), value=_lib.text(f.value), origin=_lib.text(f.origin))


@dataclass
class Report:
    """What verify and diff found: `ok` (every check passed), `findings` (every check, in the order
    the library reported them), `failures` (the failed ones), `checks`, `bytes` and `seconds`."""
    ok: bool
    findings: list
    checks: int
    bytes: int
    seconds: float

    @property
    def failures(self):
        return [f for f in self.findings if not f.ok]

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return f"<libckpt.Report ok={self.ok} {self.checks} checks, {len(self.failures)} failed>"


def _collector(cb, findings, on_finding):
    def collect(payload, f):
        finding = _finding(f.contents)
        findings.append(finding)
        return on_finding(finding) if on_finding else 0
    return cb.wrap(_lib.FINDING_FN, None, collect)


def _report(rc, findings, summary):
    return Report(ok=rc == 0, findings=findings, checks=summary.checks, bytes=summary.bytes,
                  seconds=summary.seconds)


def _open_options(deepspeed_weights):
    opts = _lib.options(lib.ckpt_open_options_default, _lib.OpenOptions)
    if deepspeed_weights is not None:
        opts.deepspeed_weights = _choice("deepspeed_weights", deepspeed_weights, {"fp32": 0, "module": 1})
    return opts


@dataclass
class ConvertStats:
    """What a conversion did: tensors written, bytes read and written, seconds, and the casts'
    counts of overflowed, subnormal and flushed values."""
    tensors: int
    bytes_in: int
    bytes_out: int
    seconds: float
    counts: dict


def _convert_options(target, dtype=None, quant=None, nz=None, nz_fp32_c0=None, overflow=None, rules=None,
                     rename=None, max_shard_bytes=None, max_memory=None, jobs=None, force=False):
    """A ckpt_convert_options from convert's keywords, and the C strings it points to (keep them)."""
    opts = _lib.options(lib.ckpt_convert_options_default, _lib.ConvertOptions)
    t = lib.ckpt_target_from_name(_lib.encode(target)) if isinstance(target, str) else 0
    if t == 0:
        raise ValueError(f"target takes 'ascend-310p', 'ascend-910b' or 'nd', not {target!r}")
    opts.target = t
    if dtype is not None:
        value = ctypes.c_int()
        if lib.ckpt_float_type_parse(_lib.encode(dtype), ctypes.byref(value)) != 0:
            raise ValueError(f"dtype takes 'f16', 'bf16', 'f32' or 'keep', not {dtype!r}")
        opts.dtype = value.value
    if quant is not None:
        value = ctypes.c_int()
        if lib.ckpt_quant_parse(_lib.encode(quant), ctypes.byref(value)) != 0:
            raise ValueError(f"quant takes 'w8a8-dynamic' or 'w8a16', not {quant!r}")
        opts.quant = value.value
    if nz is not None:
        opts.nz = _choice("nz", nz, NZ)
    if overflow is not None:
        opts.overflow = _choice("overflow", overflow, OVERFLOW)
    keep = [_lib.encode(rules), _lib.encode(rename)]   # the C strings live as long as this call
    opts.rules, opts.rename = keep
    if rules is not None:
        opts.rules_origin = b"rules"
    for name, value in (("max_shard_bytes", max_shard_bytes), ("max_memory", max_memory), ("jobs", jobs),
                        ("nz_fp32_c0", nz_fp32_c0)):
        if value is not None:
            setattr(opts, name, int(value))
    opts.force = int(bool(force))
    return opts, keep


def convert(src, dst, target, dtype=None, quant=None, nz=None, nz_fp32_c0=None, overflow=None, rules=None,
            rename=None, max_shard_bytes=None, max_memory=None, jobs=None, force=False, progress=None):
    """Converts checkpoint `src` (a path or an open Source) into the new folder `dst`, as
    `ckpt convert` does: `target` "ascend-310p", "ascend-910b" or "nd"; `dtype` "f16", "bf16", "f32"
    or "keep"; `quant` "w8a8-dynamic" or "w8a16"; `nz` "auto", "all" or "none"; `overflow`
    "saturate", "inf" or "error"; `rules` the text of extra rules; `rename` "hf" or "hf-llama".
    `progress(done, total)` is called with bytes converted, from worker threads one call at a time;
    returning True cancels (CancelledError; nothing is left at dst).  Returns ConvertStats."""
    opts, keep = _convert_options(target, dtype, quant, nz, nz_fp32_c0, overflow, rules, rename, max_shard_bytes,
                                  max_memory, jobs, force)
    source = src if isinstance(src, Source) else Source(src)
    plan = ctypes.c_void_p()
    err = _lib.Error()
    try:
        _lib.check(lib.ckpt_plan_build(ctypes.byref(plan), source._handle, _lib.encode(dst), ctypes.byref(opts),
                                       ctypes.byref(err)), err)
        cb = _Callbacks()
        stats = _lib.ConvertStats()
        fn = cb.progress(progress)
        rc = cb.run(lambda: lib.ckpt_plan_execute(plan, fn, None, ctypes.byref(stats), ctypes.byref(err)),
                    cancel=lambda: lib.ckpt_plan_cancel(plan))
        cb.check(rc, err)
    finally:
        lib.ckpt_plan_free(plan)
        if source is not src:
            source.close()
    return ConvertStats(stats.tensors, stats.bytes_in, stats.bytes_out, stats.seconds,
                        {"overflowed": stats.counts.overflowed, "subnormal": stats.counts.subnormal,
                         "flushed": stats.counts.flushed})


def verify(dst, against=None, sums=None, max_abs_error=0.0, max_rel_error=0.0, jobs=None, max_memory=None,
           deepspeed_weights=None, convert=None, ignore_missing=False, progress=None, on_finding=None):
    """Checks the folder `dst` as `ckpt verify` does: against its ckpt-manifest.json (or a bundle),
    with `against` also every tensor recomputed from that source, or with `sums` instead against
    a checksum list (sha256sum / xxhsum lines, or a ckpt-manifest.json).  `convert`, a dict of
    convert's keywords (target required), is the conversion `against` proves; None: the options
    the manifest records (each reported as an "option" finding).  `ignore_missing` (with sums):
    a listed file dst lacks is no failure, as sha256sum --ignore-missing.  Returns a Report (falsy
    when a check failed); raises when the check cannot run.  `progress(done, total)` as for
    convert; `on_finding(finding)` sees each finding as it comes (returning True stops)."""
    cb = _Callbacks()
    findings = []
    summary = _lib.VerifySummary()
    err = _lib.Error()
    if ignore_missing and sums is None:
        raise ValueError("ignore_missing goes with sums=")
    if sums is not None:
        if against is not None:
            raise ValueError("sums and against are two different checks: give one")
        opts = _lib.options(lib.ckpt_sums_options_default, _lib.SumsOptions)
        opts.jobs = int(jobs or 0)
        opts.ignore_missing = int(bool(ignore_missing))
        opts.progress = cb.progress(progress)
        collect = _collector(cb, findings, on_finding)
        rc = cb.run(lambda: lib.ckpt_verify_sums(_lib.encode(dst), _lib.encode(sums), ctypes.byref(opts), collect,
                                                 None, ctypes.byref(summary), ctypes.byref(err)))
    else:
        opts = _lib.options(lib.ckpt_verify_options_default, _lib.VerifyOptions)
        open_opts = _open_options(deepspeed_weights)
        keep = _lib.encode(against)
        opts.against = keep
        opts.max_abs_error, opts.max_rel_error = float(max_abs_error), float(max_rel_error)
        opts.jobs = int(jobs or 0)
        opts.max_memory = int(max_memory or 0)
        opts.open = ctypes.pointer(open_opts)
        opts.progress = cb.progress(progress)
        if convert is not None:
            if against is None:
                raise ValueError("convert options are proven against a source: give against= too")
            convert_opts, _keep = _convert_options(**convert)
            opts.convert = ctypes.pointer(convert_opts)
        collect = _collector(cb, findings, on_finding)
        rc = cb.run(lambda: lib.ckpt_verify(_lib.encode(dst), ctypes.byref(opts), collect, None,
                                            ctypes.byref(summary), ctypes.byref(err)))
    cb.check(rc, err, allowed=(0, MISMATCH))
    return _report(rc, findings, summary)


def diff(a, b, names_only=False, max_abs_error=0.0, max_rel_error=0.0, deepspeed_weights=None, progress=None,
         on_finding=None):
    """Compares two checkpoints of any formats and layouts as `ckpt diff` does.  Returns a Report
    (falsy when they differ).  `progress(done, total)` is told the bytes of the first checkpoint's
    tensors compared so far; returning True cancels."""
    cb = _Callbacks()
    opts = _lib.options(lib.ckpt_diff_options_default, _lib.DiffOptions)
    open_opts = _open_options(deepspeed_weights)
    opts.names_only = int(bool(names_only))
    opts.max_abs_error, opts.max_rel_error = float(max_abs_error), float(max_rel_error)
    opts.open = ctypes.pointer(open_opts)
    opts.events = cb.events(progress)
    findings = []
    summary = _lib.VerifySummary()
    err = _lib.Error()
    collect = _collector(cb, findings, on_finding)
    rc = cb.run(lambda: lib.ckpt_diff(_lib.encode(a), _lib.encode(b), ctypes.byref(opts), collect, None,
                                      ctypes.byref(summary), ctypes.byref(err)))
    cb.check(rc, err, allowed=(0, MISMATCH))
    return _report(rc, findings, summary)


def sums(path, format="xxh128", jobs=None, progress=None):   # noqa: A002 - the CLI's word
    """The checksum list of every file under `path` (as `ckpt manifest sums`): a list of
    (relative path, hex digest) in path order; format "xxh128" (XXH3-128) or "sha256"."""
    cb = _Callbacks()
    opts = _lib.options(lib.ckpt_sums_options_default, _lib.SumsOptions)
    opts.format = _choice("format", format, SUMS)
    opts.jobs = int(jobs or 0)
    opts.progress = cb.progress(progress)
    out = []
    fn = cb.wrap(_lib.SUM_FN, None, lambda payload, p, h, line: out.append((_lib.text(p), _lib.text(h))))
    err = _lib.Error()
    cb.check(cb.run(lambda: lib.ckpt_sums(_lib.encode(path), ctypes.byref(opts), fn, None, ctypes.byref(err))), err)
    return out


def manifest(path, jobs=None, deepspeed_weights=None, progress=None):
    """The manifest of checkpoint `path` as it is (as `ckpt manifest create`), parsed: a dict."""
    cb = _Callbacks()
    opts = _lib.options(lib.ckpt_manifest_options_default, _lib.ManifestOptions)
    open_opts = _open_options(deepspeed_weights)
    opts.open = ctypes.pointer(open_opts)
    opts.jobs = int(jobs or 0)
    opts.progress = cb.progress(progress)
    text = ctypes.c_void_p()
    err = _lib.Error()
    rc = cb.run(lambda: lib.ckpt_manifest_create(_lib.encode(path), ctypes.byref(opts), ctypes.byref(text),
                                                 ctypes.byref(err)))
    try:
        cb.check(rc, err)
        return json.loads(ctypes.string_at(text.value).decode("utf-8"))
    finally:
        lib.ckpt_free(text)
