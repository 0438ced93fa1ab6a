#!/bin/sh
# source_manifest.sh: `ckpt manifest create SRC` hashes a source as it is: its files' XXH3-128
# are what the real xxhsum says, its tensors' are the XXH3-128 of the bytes an independent
# reader (Python's json and struct over the safetensors layout; for DCP, the golden torch wrote
# before cutting the tensors into chunks) finds; a copy is checked against it with
# verify --sums; -o replaces its file atomically; `ckpt verify` on such a manifest says what it is.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

ckpt=${CKPT_BIN:-build/ckpt}
td=${CKPT_TESTDATA:-testdata}
py=/usr/bin/python3
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# tensor_sums SAFETENSORS...: "NAME XXH3-128" of each tensor's data bytes, hashed by xxhsum
tensor_sums() {
    "$py" - "$@" <<'PY'
import json, struct, subprocess, sys
for path in sys.argv[1:]:
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    for name, e in sorted(header.items()):
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out = subprocess.run(["xxhsum", "-H2", "-"], input=blob[8 + n + a:8 + n + b], capture_output=True).stdout
        print(name, out.split()[0].decode())
PY
}
# manifest_sums MANIFEST: the same pairs from a manifest, and its files as "HEX  PATH" lines
manifest_sums() {
    "$py" -c 'import json, sys
m = json.load(open(sys.argv[1]))
for t in sorted(m["tensors"], key=lambda t: t["name"]):
    print(t["name"], t["xxh3_128"])' "$1"
}
manifest_files() {
    "$py" -c 'import json, sys
for f in json.load(open(sys.argv[1]))["files"]:
    print(f["xxh3_128"] + "  " + f["path"])' "$1"
}

check "manifest create SRC prints one JSON document" \
    '"$ckpt" manifest create "$td/sample" --quiet >"$t/sample.json" && "$py" -m json.tool "$t/sample.json" >/dev/null'
check "... of the source as it is: target null, the source's format, its base name only" \
    '"$py" -c "import json, sys; m = json.load(open(sys.argv[1]));
assert m[\"target\"] is None and m[\"manifest_version\"] == 1 and m[\"source\"][\"format\"] == \"safetensors\"
assert m[\"source\"][\"path\"] == \"sample\" and m[\"source\"][\"files\"] == m[\"files\"]" "$t/sample.json"'
(cd "$td/sample" && xxhsum -H2 * 2>/dev/null) >"$t/want.files"
check "its files' checksums are what xxhsum -H2 prints" 'manifest_files "$t/sample.json" | cmp -s - "$t/want.files"'
tensor_sums "$td"/sample/*.safetensors | sort >"$t/want.tensors"
check "its tensors' checksums are those of the bytes the safetensors layout gives (21)" \
    'manifest_sums "$t/sample.json" | sort | cmp -s - "$t/want.tensors" && [ "$(wc -l <"$t/want.tensors")" -eq 21 ]'
"$ckpt" manifest create "$td/dcp/new" --quiet >"$t/dcp.json" 2>"$t/err"
tensor_sums "$td/dcp/golden.safetensors" | sort >"$t/want.dcp"
check "a DCP folder's tensors, joined from their chunks, hash as the golden torch wrote" \
    'manifest_sums "$t/dcp.json" | sort | cmp -s - "$t/want.dcp"'
check "a single file: its base name, and the same tensor checksums" \
    '"$ckpt" manifest create "$td/dcp/golden.safetensors" -o "$t/one.json" && manifest_files "$t/one.json" | grep -q "  golden.safetensors$" &&
     manifest_sums "$t/one.json" | sort | cmp -s - "$t/want.dcp"'
check "-j 1 gives the same bytes" '"$ckpt" manifest create "$td/sample" -j 1 | cmp -s - "$t/sample.json"'

# the journey: hashed before, checked after
cp -r "$td/sample" "$t/copy"
check "verify --sums MANIFEST passes on an intact copy" '"$ckpt" verify "$t/copy" --sums "$t/sample.json" >/dev/null 2>&1'
printf 'X' | dd of="$t/copy/model-00001-of-00002.safetensors" bs=1 seek=9000 conv=notrunc 2>/dev/null
check "... and fails (exit 1) on a copy with one byte changed, naming the file" \
    '"$ckpt" verify "$t/copy" --sums "$t/sample.json" >"$t/out" 2>&1; [ $? -eq 1 ] &&
     grep -q "^FAIL file  *model-00001-of-00002.safetensors: XXH3-128" "$t/out"'
# which tensor holds byte 9000 of the first shard, by the safetensors layout itself
held=$("$py" -c 'import json, struct, sys
blob = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
for name, e in json.loads(blob[8:8 + n]).items():
    if name != "__metadata__" and 8 + n + e["data_offsets"][0] <= 9000 < 8 + n + e["data_offsets"][1]:
        print(name)' "$t/copy/model-00001-of-00002.safetensors")
"$ckpt" verify "$t/copy" --sums "$t/sample.json" -v >"$t/out" 2>&1
check "... naming the tensor whose bytes changed ($held), and only it" \
    '[ -n "$held" ] && grep -q "^FAIL tensor  *model-00001-of-00002.safetensors: tensor $held changed" "$t/out" &&
     [ "$(grep -c "^FAIL tensor" "$t/out")" -eq 1 ] && grep -q "^ok   tensor .* unchanged" "$t/out"'
cp -r "$td/dcp/new" "$t/dcp"
"$ckpt" manifest create "$t/dcp" -o "$t/dcp.json" >/dev/null 2>&1
check "a DCP tensor's file is the .distcp file its chunk is cut from" \
    'grep -q "\"file\": \"__1_0.distcp\"" "$t/dcp.json" && ! grep -q "\"file\": \".*@" "$t/dcp.json"'
cp "$t/sample.json" "$t/copy/ckpt-manifest.json"
check "ckpt verify on a source manifest says what it is and how to check it (exit 3)" \
    '"$ckpt" verify "$t/copy" 2>"$t/err"; [ $? -eq 3 ] && grep -q "the manifest of a source (ckpt_manifest_create).*--sums MANIFEST" "$t/err"'

# -o: written whole or not at all
printf 'old' >"$t/out.json"
check "-o replaces its file with the manifest" \
    '"$ckpt" manifest create "$td/sample" -o "$t/out.json" && cmp -s "$t/out.json" "$t/sample.json"'
check "... and leaves no temporary file beside it" '[ "$(ls -A "$t" | grep -c "^\.out.json")" -eq 0 ]'
"$ckpt" manifest create "$td/hostile/alias-bomb.pt" -o "$t/out.json" >/dev/null 2>"$t/err"
status=$?
check "a source that cannot be read is refused (exit 3), -o FILE untouched" \
    '[ "$status" -eq 3 ] && cmp -s "$t/out.json" "$t/sample.json"'
check "a folder -o cannot write to fails with exit 4" \
    '"$ckpt" manifest create "$td/sample" -o "$t/none/x.json" 2>/dev/null; [ $? -eq 4 ]'
check "no SRC is a usage error (exit 2)" '"$ckpt" manifest create 2>/dev/null; [ $? -eq 2 ]'
