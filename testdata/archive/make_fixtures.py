#!/usr/bin/python3
"""Writes the archive fixtures: checkpoints inside .nemo/.tar/.tar.gz/.tar.zst/.zip,
and hostile archives that must be refused.  Run: /usr/bin/python3 make_fixtures.py

The originals they wrap stay beside them (nemo_original/) or are testdata/sample,
so a test compares every tensor of an archive with `ckpt diff` against the folder.
"""
import io
import os
import subprocess
import tarfile
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "sample")
FIXED_TIME = 1700000000


def add_bytes(tar, name, data, **fields):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_TIME
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def add_folder(tar, folder, prefix):
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            add_bytes(tar, prefix + name, f.read())


def nemo_original():
    """A NeMo 1 .nemo: model_config.yaml + model_weights.ckpt (torch.save of a small state dict)."""
    out = os.path.join(HERE, "nemo_original")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    state = {
        "model.embedding.word_embeddings.weight": torch.randn(16, 8, generator=g),
        "model.decoder.layers.0.self_attention.linear_qkv.weight": torch.randn(24, 8, generator=g).to(torch.bfloat16),
        "model.decoder.layers.0.mlp.linear_fc1.bias": torch.randn(12, generator=g).half(),
        "model.output_layer.weight": torch.randn(16, 8, generator=g),
    }
    torch.save(state, os.path.join(out, "model_weights.ckpt"))
    with open(os.path.join(out, "model_config.yaml"), "w") as f:
        f.write("num_layers: 1\nhidden_size: 8\nnum_attention_heads: 2\n")
    return out


def good_archives(nemo_dir):
    with tarfile.open(os.path.join(HERE, "model.nemo"), "w", format=tarfile.GNU_FORMAT) as tar:
        add_folder(tar, nemo_dir, "./")
    with tarfile.open(os.path.join(HERE, "model-old.nemo"), "w:gz", format=tarfile.GNU_FORMAT) as tar:
        add_folder(tar, nemo_dir, "./")   # NeMo before 1.7 gzipped its tars
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_folder(tar, SAMPLE, "sample/")
    zst = subprocess.run(["zstd", "-q", "-19", "-c"], input=raw.getvalue(), stdout=subprocess.PIPE, check=True)
    with open(os.path.join(HERE, "sample.tar.zst"), "wb") as f:
        f.write(zst.stdout)
    # the sample is 250 KB of random floats: the other containers wrap the small NeMo folder
    with tarfile.open(os.path.join(HERE, "weights.tar.gz"), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        add_folder(tar, nemo_dir, "")
    with zipfile.ZipFile(os.path.join(HERE, "weights.zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(os.listdir(nemo_dir)):
            info = zipfile.ZipInfo("weights/" + name, date_time=(2023, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(nemo_dir, name), "rb") as f:
                z.writestr(info, f.read())


def sparse_archive():
    """An uncompressed tar whose member is sparse (GNU tar -S): not readable in place, so copied."""
    out = os.path.join(HERE, "sparse_original")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(11)
    state = {"zeros": torch.zeros(16384), "weight": torch.randn(8, 8, generator=g)}
    dense = os.path.join(HERE, "dense.pt")
    torch.save(state, dense)
    subprocess.run(["cp", "--sparse=always", dense, os.path.join(out, "model.pt")], check=True)
    os.remove(dense)
    subprocess.run(["tar", "--sparse", "--format=gnu", "--mtime=@%d" % FIXED_TIME, "--owner=0", "--group=0",
                    "-cf", os.path.join(HERE, "sparse.tar"), "-C", HERE, "sparse_original/model.pt"], check=True)
    with tarfile.open(os.path.join(HERE, "sparse.tar")) as tar:
        assert tar.getmember("sparse_original/model.pt").issparse(), "the file system kept no hole"


def hostile(name, build):
    with tarfile.open(os.path.join(HERE, "hostile", name), "w", format=tarfile.GNU_FORMAT) as tar:
        build(tar)


def hostile_archives():
    os.makedirs(os.path.join(HERE, "hostile"), exist_ok=True)
    cfg = b"num_layers: 1\n"
    hostile("traversal.tar", lambda t: add_bytes(t, "../escape.safetensors", cfg))
    hostile("absolute.tar", lambda t: add_bytes(t, "/tmp/escape.safetensors", cfg))
    hostile("symlink.tar", lambda t: add_bytes(t, "model.safetensors", b"", type=tarfile.SYMTYPE,
                                               linkname="/etc/passwd"))
    def hardlink(t):
        add_bytes(t, "a.yaml", cfg)
        add_bytes(t, "model.safetensors", b"", type=tarfile.LNKTYPE, linkname="a.yaml")
    hostile("hardlink.tar", hardlink)
    hostile("fifo.tar", lambda t: add_bytes(t, "model.safetensors", b"", type=tarfile.FIFOTYPE))
    def duplicate(t):
        add_bytes(t, "model_config.yaml", cfg)
        add_bytes(t, "model_config.yaml", cfg)
    hostile("duplicate.tar", duplicate)
    # a header claiming 1 MiB over 512 bytes of data: the archive ends inside the member
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_bytes(tar, "model.safetensors", b"x" * 512)
    data = bytearray(raw.getvalue())
    size_field = b"%011o\0" % (1 << 20)
    data[124:136] = size_field
    checksum = sum(data[:148]) + 8 * 32 + sum(data[156:512])
    data[148:156] = b"%06o\0 " % checksum
    with open(os.path.join(HERE, "hostile", "lying-size.tar"), "wb") as f:
        f.write(bytes(data[:1024]))
    # a bomb: 256 MiB of zeros in a few KB of zstd (streamed, never held in memory here)
    bomb_size = 256 << 20
    info = tarfile.TarInfo("model.safetensors")
    info.size = bomb_size
    info.mtime = FIXED_TIME
    header = info.tobuf(tarfile.GNU_FORMAT)
    proc = subprocess.Popen(["zstd", "-q", "-19", "-c"], stdin=subprocess.PIPE,
                            stdout=open(os.path.join(HERE, "hostile", "bomb.tar.zst"), "wb"))
    proc.stdin.write(header)
    chunk = bytes(1 << 20)
    for _ in range(bomb_size >> 20):
        proc.stdin.write(chunk)
    proc.stdin.write(bytes(1024))
    proc.stdin.close()
    proc.wait()


if __name__ == "__main__":
    good_archives(nemo_original())
    sparse_archive()
    hostile_archives()
