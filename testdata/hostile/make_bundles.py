#!/usr/bin/env python3
"""Hostile bundles for tests/hostile.sh, written from docs/bundle.md with no help from libckpt
(an independent writer of the format: zstd and XXH3 through ctypes on the system libraries).
Each holds one small safetensors file whose header is a byte segment (decompressed when the
bundle is opened) and whose tensor is a segment of bf16 planes, with one lie: frames placed
outside the file or sized wrongly, a zstd frame claiming more bytes than the plan gives it or
inflating past them, a frame that belongs elsewhere, a bomb of zeros, names leaving the bundle.
Every checksum that guards the lie is made to match, so that the check behind it is reached.
Run once with /usr/bin/python3; the small outputs are committed.  Each must be refused, exit 3.
"""
import ctypes
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
zstd = ctypes.CDLL("libzstd.so.1")
xxh = ctypes.CDLL("libxxhash.so.0")
zstd.ZSTD_compressBound.restype = ctypes.c_size_t
zstd.ZSTD_compress.restype = ctypes.c_size_t
zstd.ZSTD_createCStream.restype = ctypes.c_void_p
for f in ("ZSTD_initCStream", "ZSTD_compressStream", "ZSTD_endStream", "ZSTD_freeCStream"):
    getattr(zstd, f).restype = ctypes.c_size_t
zstd.ZSTD_initCStream.argtypes = [ctypes.c_void_p, ctypes.c_int]
zstd.ZSTD_compressStream.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
zstd.ZSTD_endStream.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
zstd.ZSTD_freeCStream.argtypes = [ctypes.c_void_p]
xxh.XXH3_64bits.restype = ctypes.c_uint64
xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

MAGIC = b"\x89CKB\r\n\x1a\n"
FRAME = 64 << 10
TRAILER_MAGIC = 0x184D2A5B


def xxh64(data):
    return xxh.XXH3_64bits(bytes(data), len(data))


def compress(data, level=1):
    cap = zstd.ZSTD_compressBound(len(data))
    out = ctypes.create_string_buffer(cap)
    n = zstd.ZSTD_compress(out, ctypes.c_size_t(cap), bytes(data), ctypes.c_size_t(len(data)), level)
    return out.raw[:n]


def planes(data):
    """bf16 elements rotated left by one bit, top bytes then low bytes (docs/bundle.md)."""
    n = len(data) // 2
    top, low = bytearray(n), bytearray(n)
    for i in range(n):
        v = data[2 * i] | data[2 * i + 1] << 8
        v = ((v << 1) | (v >> 15)) & 0xFFFF
        top[i], low[i] = v >> 8, v & 0xFF
    return bytes(top + low)


def string(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def header(kind, set_id, plan_bytes):
    h = MAGIC + struct.pack("<IIQIIIIQQ", 1, kind, set_id, 0, 0, 0, 0, plan_bytes, 0)
    return h + struct.pack("<Q", xxh64(h))


def safetensors(pad=0):
    values = bytes((i * 37) & 0xFF for i in range(512))   # 256 bf16 values
    head = json.dumps({"w": {"dtype": "BF16", "shape": [16, 16], "data_offsets": [0, 512]}}).encode()
    head += b" " * (pad + (-(len(head) + pad) % 8))
    return struct.pack("<Q", len(head)) + head, values


def bundle(name, files, lie=None, volumes=b""):
    """files: [(path, [(kind, width, names, bytes)])]; lie(frames) may edit the frames' records."""
    plan = struct.pack("<IQ", 0, FRAME) + string("safetensors") + struct.pack("<I", len(files))
    frames = []   # [file, offset in file, original bytes, width]
    length = lambda data: data if isinstance(data, int) else len(data)   # an int: that many zeros
    for fi, (path, segments) in enumerate(files):
        size = sum(length(s[3]) for s in segments)
        plan += string(path) + struct.pack("<QII", size, 0, len(segments))
        at = 0
        for kind, width, names, data in segments:
            plan += struct.pack("<QBBHI", length(data), kind, width, 0, len(names)) + b"".join(string(n) for n in names)
            for k in range(0, length(data), FRAME):
                chunk = b"\0" * min(FRAME, data - k) if isinstance(data, int) else data[k:k + FRAME]
                frames.append([fi, at + k, chunk, width])
            at += length(data)
    set_id = xxh64(plan)
    out = bytearray(header(0, set_id, len(plan)) + plan)
    records = []
    cache = {}
    for fi, offset, data, width in frames:
        key = (data, width) if len(data) > 4096 else None   # the bomb's frames of zeros: compressed once
        if key not in cache or key is None:
            cache[key] = compress(planes(data) if width == 2 else data)
        packed = cache[key]
        packed += struct.pack("<IIIIQQ", TRAILER_MAGIC, 24, fi, 0, offset, xxh64(data))
        records.append({"volume": 0, "offset": len(out), "packed": packed, "file": fi})
        out += packed
    if lie:
        lie(records, out)
    table = volumes if volumes else struct.pack("<I", 0)
    for r in records:
        table += struct.pack("<IIQ", r["volume"], len(r["packed"]) + r.get("extra", 0), r["offset"])
    table += b"\0" * 16 * (len(files) + sum(len(s) for _, s in files))   # file and segment checksums: not reached
    table_offset = len(out)
    out += table + struct.pack("<QQQ", table_offset, len(table), xxh64(table)) + b"CKBTABLE"
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(out)


def model(path="model.safetensors", pad=0):
    head, values = safetensors(pad)
    return [(path, [(0, 0, [], head), (1, 2, ["w"], values)])]


def frame_outside(records, out):
    records[1]["offset"] = 1 << 40


def lying_csize(records, out):
    records[0]["extra"] = 8   # the header frame claims 8 bytes of the tensor frame after it


def rewrite_frame(records, out, index, packed):
    """Puts another frame in record `index`'s place, moving everything after it."""
    r = records[index]
    delta = len(packed) - len(r["packed"])
    out[r["offset"]:r["offset"] + len(r["packed"])] = packed
    r["packed"] = packed
    for later in records[index + 1:]:
        later["offset"] += delta


def lying_content_size(records, out):
    """The header frame's zstd frame says it holds twice the bytes the plan gives it."""
    head, _ = safetensors()
    packed = compress(head + head) + records[0]["packed"][-32:]
    rewrite_frame(records, out, 0, packed)


def inflating_frame(records, out):
    """The header frame's zstd frame, without a content size, inflates to far more than the plan says."""
    # a zstd frame made by streaming, without ZSTD_CCtx_setPledgedSrcSize, records no content size
    cctx = zstd.ZSTD_createCStream()
    zstd.ZSTD_initCStream(cctx, 1)

    class Buffer(ctypes.Structure):
        _fields_ = [("ptr", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]

    src = ctypes.create_string_buffer(b"\0" * (1 << 20), 1 << 20)
    dst = ctypes.create_string_buffer(1 << 20)
    inb = Buffer(ctypes.cast(src, ctypes.c_void_p), 1 << 20, 0)
    outb = Buffer(ctypes.cast(dst, ctypes.c_void_p), 1 << 20, 0)
    zstd.ZSTD_compressStream(cctx, ctypes.byref(outb), ctypes.byref(inb))
    zstd.ZSTD_endStream(cctx, ctypes.byref(outb))
    body = dst.raw[:outb.pos]
    zstd.ZSTD_freeCStream(cctx)
    rewrite_frame(records, out, 0, body + records[0]["packed"][-32:])


def swapped(records, out):
    """The header's two frames trade places: each is whole, but not what the table says it is."""
    a, b = records[0], records[1]
    a["packed"], b["packed"] = b["packed"], a["packed"]
    start = a["offset"]
    out[start:start + len(a["packed"]) + len(b["packed"])] = a["packed"] + b["packed"]
    b["offset"] = start + len(a["packed"])


bundle("bundle-frame-outside.ckb", model(), frame_outside)
bundle("bundle-lying-frame-size.ckb", model(), lying_csize)
bundle("bundle-lying-content-size.ckb", model(), lying_content_size)
bundle("bundle-inflating-frame.ckb", model(), inflating_frame)
bundle("bundle-frames-swapped.ckb", model(pad=100000), swapped)
bundle("bundle-path-escape.ckb", model("../escape.safetensors"))
bundle("bundle-volume-escape.ckb", model(), None, struct.pack("<I", 1) + string("../elsewhere") + struct.pack("<Q", 64) +
       b"\0" * 16)
# a bomb: 1 GiB of zeros in 16 MiB frames, a few dozen bytes each
head, values = safetensors()
zeros = (1, 0, ["zeros"], 1 << 30)
FRAME = 16 << 20
bundle("bundle-bomb.ckb", [("model.safetensors", [(0, 0, [], head), zeros])])
