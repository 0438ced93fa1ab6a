#!/bin/sh
# archive.sh: checkpoints inside .nemo / .tar / .tar.gz / .tar.zst / .zip open like the folder they
# hold (every tensor equal to the original's), convert and verify --against work from an archive,
# uncompressed tars are read in place.  Hostile archives are refused in hostile.sh.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

a="$CKPT_TESTDATA/archive"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for f in model.nemo model-old.nemo weights.tar.gz weights.zip; do
    check "$f: every tensor equals model_weights.ckpt's" \
        '"$CKPT_BIN" diff "$a/$f" "$a/nemo_original/model_weights.ckpt" >"$work/out" 2>&1 &&
         grep -q "^diff: 4 checks, 0 failed" "$work/out"'
done
check "sample.tar.zst: every tensor equals testdata/sample's" \
    '"$CKPT_BIN" diff "$a/sample.tar.zst" "$CKPT_TESTDATA/sample" >"$work/out" 2>&1 &&
     grep -q "^diff: 21 checks, 0 failed" "$work/out"'
check "inspect names the format found inside" \
    '"$CKPT_BIN" inspect "$a/sample.tar.zst" | grep -q "^format:  safetensors"'
check "convert from a .tar.zst" \
    '"$CKPT_BIN" convert "$a/sample.tar.zst" "$work/out-zst" --target nd >/dev/null 2>&1'
check "convert from the .tar.zst writes what converting the folder writes, side files too" \
    '"$CKPT_BIN" convert "$CKPT_TESTDATA/sample" "$work/out-dir" --target nd >/dev/null 2>&1 &&
     [ -s "$work/out-zst/generation_config.json" ] &&
     diff -r -x ckpt-manifest.json "$work/out-zst" "$work/out-dir" >/dev/null'
check "verify --against the .tar.zst" \
    '"$CKPT_BIN" verify "$work/out-zst" --against "$a/sample.tar.zst" >/dev/null 2>&1'
check "verify --against the unpacked folder agrees" \
    '"$CKPT_BIN" verify "$work/out-zst" --against "$CKPT_TESTDATA/sample" >/dev/null 2>&1'
check "convert from a .nemo and verify --against it" \
    '"$CKPT_BIN" convert "$a/model.nemo" "$work/out-nemo" --target nd >/dev/null 2>&1 &&
     "$CKPT_BIN" verify "$work/out-nemo" --against "$a/model.nemo" >/dev/null 2>&1'

# an uncompressed tar is read where its members are: no temporary file is needed
check "model.nemo (uncompressed tar) opens with no usable TMPDIR" \
    'TMPDIR=/nonexistent "$CKPT_BIN" diff "$a/model.nemo" "$a/nemo_original/model_weights.ckpt" >/dev/null 2>&1'
check "a .tar.zst needs one (its members are inflated)" \
    '! TMPDIR=/nonexistent "$CKPT_BIN" inspect "$a/sample.tar.zst" 2>"$work/err" >/dev/null &&
     grep -q "cannot create a temporary file in /nonexistent" "$work/err"'
check "a sparse member is copied, every tensor equal to the original" \
    '"$CKPT_BIN" diff "$a/sparse.tar" "$a/sparse_original/model.pt" >"$work/out" 2>&1 &&
     grep -q "^diff: 2 checks, 0 failed" "$work/out"'
