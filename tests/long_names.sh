#!/bin/sh
# long_names.sh: names of any length up to the 64 KiB bound survive a conversion and its proof: a
# FRACTAL_NZ tensor whose name is 2,000 bytes (its layout key in the shard metadata is longer than any
# fixed buffer would hold) verifies after an honest conversion, with and without --against.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# a safetensors file as huggingface/safetensors writes it (safetensors/src/tensor.rs, serialize: 8-byte
# little-endian header length, the JSON header, then the data): two F32 matrices, one with a long name
python3 - "$work/src.safetensors" <<'PY'
import json, struct, sys
long_name = "model." + "very_long_module_name." * 90 + "weight"   # about 2,000 bytes
data = struct.pack("<1024f", *[i / 64 for i in range(1024)])
header = {long_name: {"dtype": "F32", "shape": [32, 32], "data_offsets": [0, 4096]},
          "lm_head.weight": {"dtype": "F32", "shape": [32, 32], "data_offsets": [4096, 8192]}}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + data + data)
PY
"$CKPT_BIN" convert "$work/src.safetensors" "$work/dst" --target ascend-310p --nz all --quiet >/dev/null 2>"$work/err"
status=$?
check "a 2,000-byte name converts to FRACTAL_NZ (got $status)" '[ "$status" -eq 0 ]'
check "its layout key is in the shard metadata whole" \
    'grep -q "ckpt.layout.model.\(very_long_module_name.\)\{90\}weight" "$work/dst"/*.safetensors'
"$CKPT_BIN" verify "$work/dst" >"$work/out" 2>&1
status=$?
check "verify of the honest conversion passes (got $status)" '[ "$status" -eq 0 ]'
"$CKPT_BIN" verify "$work/dst" --against "$work/src.safetensors" >"$work/out" 2>&1
status=$?
check "verify --against of the honest conversion passes (got $status)" '[ "$status" -eq 0 ]'
