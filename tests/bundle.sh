#!/bin/sh
# bundle.sh: `ckpt pack` / `ckpt unpack` round trips on every fixture format (the bundle opens as the
# same checkpoint, unpack gives back every file byte for byte), bundles read in place by inspect,
# diff, convert and verify --against with no usable TMPDIR (convert BUNDLE writes what convert SRC
# writes), damaged, truncated and short bundles refused naming what is lost while unpack recovers
# every intact file, volumes, --part K/N with --merge, and the refusals of pack.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

ckpt=${CKPT_BIN:-build/ckpt}
td=${CKPT_TESTDATA:-testdata}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# what inspect says of a checkpoint, but its path and file count (a bundle adds itself as a file)
listing() { "$ckpt" inspect --objects "$1" 2>&1 | grep -v '^path:\|^files:'; }

# same_in A B FILE...: each FILE is in folders A and B with the same bytes
same_in() {
    a=$1 b=$2
    shift 2
    for f in "$@"; do cmp -s "$a/$f" "$b/$f" || return 1; done
}

# same_files A B: a folder (or file) and its unpacked copy hold the same bytes
same_files() { if [ -d "$1" ]; then diff -r "$1" "$2" >/dev/null; else cmp -s "$1" "$2"; fi; }

for s in sample torch/dtypes.pt torch/training.pt torch/views.pt torch/views_big_endian.pt torch/views_legacy.pt \
         dcp/new dcp/old dcp/torch_dist dcp/nemo2 deepspeed/zero1 deepspeed/zero2 deepspeed/zero3 \
         megatron/tp2pp2 megatron/legacy rename/megatron.safetensors moe/deepseek_v3 moe/deepseek_v3_dist \
         moe/deepseek_v3_grouped moe/qwen3_moe_nemo2 moe/qwen3_moe_pp2; do
    b="$t/$(echo "$s" | tr / _).ckb"
    listing "$td/$s" >"$t/want"
    check "$s: packs" '"$ckpt" pack "$td/$s" "$b" --quiet >/dev/null 2>"$t/err"'
    check "$s: the bundle opens as the same checkpoint" 'listing "$b" >"$t/got" && cmp -s "$t/want" "$t/got"'
    check "$s: every tensor read in place equals the source's" '"$ckpt" diff "$td/$s" "$b" >/dev/null 2>&1'
    check "$s: verify checks every frame, tensor and file" '"$ckpt" verify "$b" --against "$td/$s" >/dev/null 2>&1'
    check "$s: unpack gives back every file byte for byte" \
        '"$ckpt" unpack "$b" "$t/un" --quiet >/dev/null 2>&1 && same_files "$td/$s" "$t/un"'
    rm -rf "$t/un"
done

check "storages no tensor is made of (optimizer and RNG state) are tensor data, not headers held in memory" \
    '"$ckpt" verify -v "$t/megatron_tp2pp2.ckb" | grep -q "^ok   tensor .*model_optim_rng.pt, bytes [0-9+]* (storage)"'

mkdir -p "$t/mix/sub/deeper"
cp "$td/sample"/* "$t/mix/"
: >"$t/mix/empty"
echo note >"$t/mix/sub/deeper/note.txt"
ln -s sub/deeper/note.txt "$t/mix/linked.txt"   # links stay inside the folder (libckpt/io/links.h)
check "empty files, nested folders and a link to a file round-trip (the link as the file it names)" \
    '"$ckpt" pack "$t/mix" "$t/mix.ckb" --quiet >/dev/null 2>&1 && "$ckpt" unpack "$t/mix.ckb" "$t/u-mix" --quiet >/dev/null 2>&1 &&
     diff -r "$t/mix" "$t/u-mix" >/dev/null && [ ! -L "$t/u-mix/linked.txt" ] && [ -f "$t/u-mix/empty" ]'
check "convert copies the file the link names as a side file, from the bundle as from the folder" \
    '"$ckpt" convert "$t/mix" "$t/c-mix1" --target nd --quiet >/dev/null 2>&1 &&
     "$ckpt" convert "$t/mix.ckb" "$t/c-mix2" --target nd --quiet >/dev/null 2>&1 &&
     diff -r -x ckpt-manifest.json "$t/c-mix1" "$t/c-mix2" >/dev/null && [ "$(cat "$t/c-mix2/linked.txt")" = note ]'
ln -s "$td/sample/config.json" "$t/mix/outside.json"
check "pack refuses a link leaving the folder (exit 3), naming it" \
    '"$ckpt" pack "$t/mix" "$t/out.ckb" --quiet >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "outside.json: a link leading out of the checkpoint" "$t/err" && ! test -e "$t/out.ckb"'
rm "$t/mix/outside.json"

# ---- in place, with no temporary space, as from the folder ----
s="$td/sample"
"$ckpt" pack "$s" "$t/s.ckb" --quiet >/dev/null
check "inspect and diff read a bundle with no usable TMPDIR" \
    'TMPDIR=/nonexistent "$ckpt" inspect "$t/s.ckb" >/dev/null 2>&1 &&
     TMPDIR=/nonexistent "$ckpt" diff "$s" "$t/s.ckb" >/dev/null 2>&1'
check "convert from a bundle with no usable TMPDIR" \
    'TMPDIR=/nonexistent "$ckpt" convert "$t/s.ckb" "$t/from-bundle" --target ascend-910b --quiet >/dev/null 2>&1'
"$ckpt" convert "$s" "$t/from-folder" --target ascend-910b --quiet >/dev/null 2>&1
check "convert BUNDLE writes what convert SRC writes, side files too" \
    'diff -r -x ckpt-manifest.json "$t/from-bundle" "$t/from-folder" >/dev/null &&
     [ -s "$t/from-bundle/generation_config.json" ]'
# the manifests differ in their source (the bundle is hashed as opened, as an archive is) and nowhere else
sed '/"source": {/,/^ },$/d' "$t/from-bundle/ckpt-manifest.json" >"$t/m1"
sed '/"source": {/,/^ },$/d' "$t/from-folder/ckpt-manifest.json" >"$t/m2"
check "... and the same manifest but for its source" 'cmp -s "$t/m1" "$t/m2" && ! grep -q ckb "$t/m2"'
check "verify --against the bundle, with no usable TMPDIR" \
    'TMPDIR=/nonexistent "$ckpt" verify "$t/from-bundle" --against "$t/s.ckb" >/dev/null 2>&1'
check "verify --against the folder agrees" '"$ckpt" verify "$t/from-bundle" --against "$s" >/dev/null 2>&1'

# ---- damage ----
cp "$t/s.ckb" "$t/bad.ckb"
# a byte in the middle of the frames: one of the second shard's tensors
printf '\377' | dd of="$t/bad.ckb" bs=1 seek=150000 conv=notrunc 2>/dev/null
check "convert of a damaged bundle: exit 3 naming the frame, the file and the tensor" \
    '"$ckpt" convert "$t/bad.ckb" "$t/c-bad" --target nd --quiet >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "frame [0-9]* (bytes [0-9+]* of model-00002-of-00002.safetensors, tensor model.layers.1.*) is damaged" "$t/err" &&
     ! test -e "$t/c-bad"'
check "verify of a damaged bundle: exit 1 naming the tensor and file lost" \
    '"$ckpt" verify "$t/bad.ckb" >"$t/out" 2>&1; [ $? -eq 1 ] &&
     grep -q "^FAIL tensor .*model.layers.1.*lost" "$t/out" &&
     grep -q "^FAIL file .*model-00002-of-00002.safetensors: lost" "$t/out"'
check "unpack of a damaged bundle: exit 3 naming the damaged file" \
    '"$ckpt" unpack "$t/bad.ckb" "$t/u-bad" --quiet >"$t/out" 2>&1; [ $? -eq 3 ] &&
     grep -q "model-00002-of-00002.safetensors: not written" "$t/out"'
check "... every intact file recovered byte for byte, the damaged one left out" \
    'same_in "$s" "$t/u-bad" config.json generation_config.json model-00001-of-00002.safetensors \
         model.safetensors.index.json && ! test -e "$t/u-bad/model-00002-of-00002.safetensors"'
head -c 150000 "$t/s.ckb" >"$t/short.ckb"
check "a truncated bundle is refused (exit 3) saying its table is lost" \
    '"$ckpt" inspect "$t/short.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] && grep -q "truncated" "$t/err"'
check "verify refuses it too" '"$ckpt" verify "$t/short.ckb" >/dev/null 2>&1; [ $? -eq 3 ]'
check "unpack walks its frames: the files before the cut recovered, exit 3 naming those lost" \
    '"$ckpt" unpack "$t/short.ckb" "$t/u-short" --quiet >"$t/out" 2>&1; [ $? -eq 3 ] &&
     same_in "$s" "$t/u-short" config.json generation_config.json model-00001-of-00002.safetensors && ! test -e "$t/u-short/model-00002-of-00002.safetensors" &&
     grep -q "model-00002-of-00002.safetensors: not written.*lost" "$t/out" && grep -q "table was lost" "$t/out"'
head -c 100 "$t/s.ckb" >"$t/cut-plan.ckb"
check "a bundle cut inside its plan: nothing to recover, nothing written" \
    '"$ckpt" unpack "$t/cut-plan.ckb" "$t/u-cut" >/dev/null 2>&1; [ $? -eq 3 ] && ! test -e "$t/u-cut"'

# ---- volumes ----
m="$td/megatron/tp2pp2"
check "volumes of at most the size asked" \
    '"$ckpt" pack "$m" "$t/v.ckb" --volume-size 80KiB --frame-size 64KiB --quiet >/dev/null 2>&1 &&
     test -s "$t/v.ckb.001" && [ "$(stat -c %s "$t/v.ckb.001")" -le 81920 ]'
check "a bundle in volumes reads and unpacks as one" \
    '"$ckpt" diff "$m" "$t/v.ckb" >/dev/null 2>&1 && "$ckpt" unpack "$t/v.ckb" "$t/u-v" --quiet >/dev/null 2>&1 &&
     diff -r "$m" "$t/u-v" >/dev/null'
mv "$t/v.ckb.001" "$t/v.ckb.away"
check "a missing volume: exit 3 naming it and the files it holds" \
    '"$ckpt" inspect "$t/v.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "v.ckb.001: volume 1 of the bundle is missing.*it holds iter_0000010" "$t/err"'
head -c 5000 "$t/v.ckb.away" >"$t/v.ckb.001"
check "a truncated volume: exit 3 saying so" \
    '"$ckpt" inspect "$t/v.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] && grep -q "v.ckb.001.*truncated" "$t/err"'
cp "$t/v.ckb.away" "$t/v.ckb.001"
printf '\0' | dd of="$t/v.ckb.001" bs=1 seek=5000 conv=notrunc 2>/dev/null
check "verify names a damaged volume to fetch again" \
    '"$ckpt" verify "$t/v.ckb" >"$t/out" 2>&1; [ $? -eq 1 ] && grep -q "^FAIL file .*volume v.ckb.001.*fetch it again" "$t/out"'

"$ckpt" pack "$m" "$t/f.ckb" --volume-size 80KiB --frame-size 64KiB --quiet >/dev/null 2>&1
cksum "$t"/f.ckb* >"$t/f.sums"
(ulimit -f 60; exec "$ckpt" pack "$m" "$t/f.ckb" --volume-size 80KiB --frame-size 64KiB --force --quiet) >/dev/null 2>"$t/err"
status=$?
check "a pack that runs out of space exits 4 (got $status)" '[ "$status" -eq 4 ] && grep -q "File too large" "$t/err"'
check "... leaving the bundle it was to replace as it was, volumes too, and no temporary file" \
    'cksum "$t"/f.ckb* | cmp -s - "$t/f.sums" && ! ls -A "$t" | grep -q "^\.f\.ckb" && "$ckpt" verify "$t/f.ckb" >/dev/null 2>&1'

# ---- parts ----
pids=""
for k in 1 2 3; do
    "$ckpt" pack "$m" "$t/p.ckb" --part "$k/3" --quiet >/dev/null 2>&1 &
    pids="$pids $!"
done
ok=0
for p in $pids; do wait "$p" || ok=1; done
check "3 parts packed in parallel" '[ $ok -eq 0 ] && ! test -e "$t/p.ckb"'
check "a part is not a bundle" '"$ckpt" inspect "$t/p.ckb.part-1-of-3" >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "pack --merge" "$t/err"'
mv "$t/p.ckb.part-2-of-3" "$t/p2"
check "merge refuses a missing part" '"$ckpt" pack --merge "$t/p.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "part 2 of 3 is missing" "$t/err" && ! test -e "$t/p.ckb"'
mv "$t/p2" "$t/p.ckb.part-2-of-3"
"$ckpt" pack "$m" "$t/q.ckb" --part 2/3 --frame-size 128KiB --quiet >/dev/null 2>&1
cp "$t/p.ckb.part-2-of-3" "$t/p2"
cp "$t/q.ckb.part-2-of-3" "$t/p.ckb.part-2-of-3"
check "merge refuses a part of another plan" '"$ckpt" pack --merge "$t/p.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "another plan" "$t/err" && ! test -e "$t/p.ckb"'
mv "$t/p2" "$t/p.ckb.part-2-of-3"
check "merge joins the parts without copying" '"$ckpt" pack --merge "$t/p.ckb" >/dev/null 2>&1 &&
     ! test -e "$t/p.ckb.part-1-of-3" && test -s "$t/p.ckb.part-3-of-3.001"'
check "the merged bundle reads, verifies and unpacks as one packed in one process" \
    '"$ckpt" diff "$m" "$t/p.ckb" >/dev/null 2>&1 && "$ckpt" verify "$t/p.ckb" >/dev/null 2>&1 &&
     "$ckpt" unpack "$t/p.ckb" "$t/u-p" --quiet >/dev/null 2>&1 && diff -r "$m" "$t/u-p" >/dev/null'

# ---- refusals ----
check "an existing bundle is not replaced without --force (exit 4)" \
    '"$ckpt" pack "$s" "$t/s.ckb" >/dev/null 2>"$t/err"; [ $? -eq 4 ] && grep -q "already exists" "$t/err"'
check "--force replaces it" '"$ckpt" pack "$s" "$t/s.ckb" --force --quiet >/dev/null 2>&1'
check "an archive is not packed (exit 3)" \
    '"$ckpt" pack "$td/archive/model.nemo" "$t/a.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] &&
     grep -q "pack the folder it holds" "$t/err" && ! test -e "$t/a.ckb"'
mkdir "$t/linked" && cp "$s"/* "$t/linked/" && ln -s / "$t/linked/root"
check "a link to a folder is refused" \
    '"$ckpt" pack "$t/linked" "$t/l.ckb" >/dev/null 2>"$t/err"; [ $? -eq 3 ] && grep -q "root" "$t/err"'
check "a bundle inside the folder it packs is a usage error" \
    '"$ckpt" pack "$s" "$s/self.ckb" >/dev/null 2>&1; [ $? -eq 2 ] && ! test -e "$s/self.ckb"'
check "a bad --frame-size is a usage error" '"$ckpt" pack "$s" "$t/x.ckb" --frame-size 1000 >/dev/null 2>&1; [ $? -eq 2 ]'
check "unpack refuses an existing DST" \
    'mkdir "$t/exists" && "$ckpt" unpack "$t/s.ckb" "$t/exists" >/dev/null 2>&1; [ $? -eq 4 ]'
exit 0
