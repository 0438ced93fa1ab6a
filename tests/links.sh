#!/bin/sh
# links.sh: the one link policy for sources (libckpt/io/links.h, docs/verify.md "Links in a source"):
# links are followed while they stay inside the source's root, for shards, index files, config.json,
# side files and DeepSpeed tag folders alike; a link leaving it is refused with exit 3 naming it.
# A Hugging Face cache snapshot, whose files link into ../../blobs, converts like the plain folder.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
s="$CKPT_TESTDATA/sample"
"$CKPT_BIN" convert "$s" "$t/plain" --target ascend-310p --quiet >/dev/null 2>&1 || echo "not ok 0 - plain convert"

# huggingface_hub's cache (file_download.py, hf_hub_download: the blob is stored once under
# blobs/<etag> and snapshots/<commit>/<name> is a relative link to it, _create_symlink)
repo="$t/hub/models--org--tiny"
mkdir -p "$repo/blobs" "$repo/snapshots/0123abc" "$repo/refs"
echo 0123abc >"$repo/refs/main"
for f in "$s"/*; do
    etag=$(sha256sum "$f" | cut -c1-64)
    cp "$f" "$repo/blobs/$etag"
    ln -s "../../blobs/$etag" "$repo/snapshots/0123abc/$(basename "$f")"
done
snap="$repo/snapshots/0123abc"
"$CKPT_BIN" convert "$snap" "$t/hf" --target ascend-310p --quiet >/dev/null 2>"$t/err"
status=$?
check "a Hugging Face cache snapshot converts (got $status)" '[ "$status" -eq 0 ]'
check "into the folder the plain checkpoint gives, config.json and side files included" \
    'diff -r -x ckpt-manifest.json "$t/plain" "$t/hf" && [ -f "$t/hf/config.json" ] && [ -f "$t/hf/generation_config.json" ]'
check "verify --against the snapshot passes" '"$CKPT_BIN" verify "$t/hf" --against "$snap" >/dev/null 2>&1'
check "one snapshot file (a link into blobs) opens" \
    '"$CKPT_BIN" inspect "$snap/model-00001-of-00002.safetensors" >/dev/null 2>&1'
ln -s "$snap" "$t/named"
check "SRC itself a link to a folder elsewhere converts" \
    '"$CKPT_BIN" convert "$t/named" "$t/named-out" --target ascend-310p --quiet >/dev/null 2>&1'

# refuses SRC WHAT: convert exits 3, one line naming the link, no DST
refuses() {
    rm -rf "$t/out"
    "$CKPT_BIN" convert "$1" "$t/out" --target nd --quiet >/dev/null 2>"$t/err"
    status=$?
    [ "$status" -eq 3 ] && grep -qF -- "$2: a link leading out of the checkpoint" "$t/err" && [ "$(wc -l <"$t/err")" -eq 1 ] &&
        ! test -e "$t/out" || { echo "# exit $status: $(cat "$t/err")"; return 1; }
}
cp -r "$s" "$t/shard" && rm "$t/shard/model-00002-of-00002.safetensors" &&
    ln -s "$s/model-00002-of-00002.safetensors" "$t/shard/model-00002-of-00002.safetensors"
check "a shard linking out of SRC is refused" 'refuses "$t/shard" "$t/shard/model-00002-of-00002.safetensors"'
cp -r "$s" "$t/side" && ln -s /etc/hostname "$t/side/notes.txt"
check "a side file linking out of SRC is refused, not copied" 'refuses "$t/side" "$t/side/notes.txt"'
cp -r "$s" "$t/index" && rm "$t/index/model.safetensors.index.json" &&
    ln -s "$s/model.safetensors.index.json" "$t/index/model.safetensors.index.json"
check "an index linking out of SRC is refused" 'refuses "$t/index" "$t/index/model.safetensors.index.json"'
cp -r "$s" "$t/config" && rm "$t/config/config.json" && ln -s "$s/config.json" "$t/config/config.json"
check "a config.json linking out of SRC is refused" 'refuses "$t/config" "$t/config/config.json"'
ds="$CKPT_TESTDATA/deepspeed/zero2"
mkdir "$t/tag" && cp "$ds/latest" "$t/tag/" && ln -s "$ds/global_step7" "$t/tag/global_step7"
check "a DeepSpeed tag folder linking out of SRC is refused" 'refuses "$t/tag" "$t/tag/global_step7"'

# links inside the root are followed, whatever they name
mkdir -p "$t/inside/store" && cp "$ds/latest" "$t/inside/" && cp -r "$ds/global_step7" "$t/inside/store/" &&
    ln -s store/global_step7 "$t/inside/global_step7"
check "a DeepSpeed tag folder linking inside SRC is followed" \
    '"$CKPT_BIN" convert "$t/inside" "$t/inside-out" --target nd --quiet >/dev/null 2>&1'
mkdir -p "$t/within/blobs" && cp "$s"/* "$t/within/blobs/" && for f in "$s"/*; do
    ln -s "blobs/$(basename "$f")" "$t/within/$(basename "$f")"; done
check "shards, index and side files linking inside SRC are followed" \
    '"$CKPT_BIN" convert "$t/within" "$t/within-out" --target ascend-310p --quiet >/dev/null 2>&1 &&
     diff -r -x ckpt-manifest.json "$t/plain" "$t/within-out"'
mkdir -p "$t/deep/context" && cp -r "$s"/* "$t/deep/" && ln -s /etc/hostname "$t/deep/context/model.yaml"
check "a link leaving SRC from a subfolder is refused too" 'refuses "$t/deep" "$t/deep/context/model.yaml"'
