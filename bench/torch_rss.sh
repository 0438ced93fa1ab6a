#!/bin/sh
# torch_rss.sh CKPT: peak resident memory of `ckpt inspect` on a 1 GiB torch.save .bin
# (goal: under 64 MiB, since storages are memory-mapped, not read), against the file size.
# The file is written by a few lines of Python with Debian's python3-torch when it is
# installed; otherwise the benchmark says so and skips.
set -eu
ckpt=$1
dir=${BENCH_DIR:-/tmp/ckpt-bench-torch}
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    echo "torch_rss: python3-torch is not installed; skipped (apt-get install python3-torch)"
    exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 - "$dir/pytorch_model.bin" <<'PY'
import sys, torch
# 1 GiB of bf16 in 64 tensors of 16 MiB, as a language model's state dict
state = {f"model.layers.{i}.mlp.down_proj.weight": torch.zeros(4096, 2048, dtype=torch.bfloat16) for i in range(64)}
torch.save(state, sys.argv[1])
PY
bytes=$(stat -c %s "$dir/pytorch_model.bin")
/usr/bin/time -f "%e %M" -o "$dir/time" "$ckpt" inspect "$dir/pytorch_model.bin" >/dev/null
set -- $(cat "$dir/time")
printf 'torch_rss: ckpt inspect of a %d MiB torch.save .bin: %ss, peak RSS %d MiB (goal < 64 MiB)\n' \
    $((bytes >> 20)) "$1" $(($2 / 1024))
