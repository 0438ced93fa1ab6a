#!/bin/sh
# sums.sh: `ckpt manifest sums` prints what the real sha256sum and xxhsum print (coreutils and the
# xxhash package, the references), their -c accepts it, `ckpt verify DIR --sums FILE` accepts
# the lists they write (GNU and --tag forms, escaped names, ./ paths, CRLF, a ckpt-manifest.json),
# finds a changed or missing file, and refuses hostile lists with one line naming file and line.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

ckpt=${CKPT_BIN:-build/ckpt}
td=${CKPT_TESTDATA:-testdata}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
for tool in sha256sum xxhsum; do
    command -v $tool >/dev/null || { echo "not ok - $tool is missing (scripts/ensure-deps.sh test installs it)"; exit 1; }
done

d="$t/model"
cp -r "$td/sample" "$d"
mkdir -p "$d/original" "$d/.cache"
printf 'nested' >"$d/original/params.json"
printf 'hidden' >"$d/.cache/lock"
printf 'slash' >"$d/back\\slash"
ln -s "$(cd "$td" && pwd)/sample/config.json" "$d/linked.json"   # a Hugging Face cache snapshot links to its blobs

# the references: the real tools over the same files, in the same (bytewise) order
(cd "$d" && LC_ALL=C find . -path ./.cache -prune -o -type f -print -o -type l -print | sed 's|^\./||' | LC_ALL=C sort) \
    >"$t/names"
(cd "$d" && tr '\n' '\0' <"$t/names" | xargs -0 sha256sum 2>/dev/null) >"$t/ref.sha256"
(cd "$d" && tr '\n' '\0' <"$t/names" | xargs -0 xxhsum -H2 2>/dev/null) >"$t/ref.xxh128"

check "sums --format sha256 prints what sha256sum prints (escaped name included)" \
    '"$ckpt" manifest sums "$d" --format sha256 >"$t/sha256" && cmp -s "$t/sha256" "$t/ref.sha256"'
check "sums (xxh128) prints what xxhsum -H2 prints" \
    '"$ckpt" manifest sums "$d" >"$t/xxh128" && cmp -s "$t/xxh128" "$t/ref.xxh128"'
check "sha256sum -c accepts the sha256 list" '(cd "$d" && sha256sum -c --quiet "$t/sha256" 2>/dev/null)'
check "xxhsum -c accepts the xxh128 list" '(cd "$d" && xxhsum -c --quiet "$t/xxh128" 2>/dev/null)'
check "hidden files are left out, nested and linked ones listed" \
    '! grep -q cache "$t/sha256" && grep -q "  original/params.json$" "$t/sha256" && grep -q "  linked.json$" "$t/sha256"'
check "sums of a file lists its base name" \
    '"$ckpt" manifest sums "$d/config.json" --format sha256 >"$t/one" &&
     [ "$(cat "$t/one")" = "$(cd "$d" && sha256sum config.json)" ]'
check "-j 1 lists the same" '"$ckpt" manifest sums "$d" -j 1 | cmp -s - "$t/xxh128"'

for form in sha256 xxh128; do
    check "verify --sums accepts $form's own list (exit 0)" '"$ckpt" verify "$d" --sums "$t/ref.$form" >"$t/out" 2>&1'
done
check "... and says how many files it checked" 'grep -q "^verify: 8 checks, 0 failed" "$t/out"'
(cd "$d" && sha256sum --tag config.json model-00001-of-00002.safetensors) >"$t/tag.sha256"
(cd "$d" && xxhsum -H2 --tag config.json original/params.json 2>/dev/null) >"$t/tag.xxh128"
check "verify --sums accepts sha256sum --tag lines" '"$ckpt" verify "$d" --sums "$t/tag.sha256" >/dev/null 2>&1'
check "verify --sums accepts xxhsum --tag lines" '"$ckpt" verify "$d" --sums "$t/tag.xxh128" >/dev/null 2>&1'
# a list as published beside a download: made with find, ./ paths, binary-mode '*', CRLF ends, upper case
(cd "$d" && find . -name '*.safetensors' -exec sha256sum -b {} + | sed 's/^[0-9a-f]*/\U&/; s/$/\r/') >"$t/published"
check "a published SHA-256 list (./ paths, '*', CRLF, upper-case hex) is accepted" \
    '"$ckpt" verify "$d" --sums "$t/published" -v >"$t/out" 2>&1 && [ "$(grep -c "^ok .*SHA-256 matches" "$t/out")" -eq 2 ]'
cat "$t/published" "$t/tag.xxh128" >"$t/mixed"
check "a list mixing SHA-256 and XXH3-128 lines is checked line by line" \
    '"$ckpt" verify "$d" --sums "$t/mixed" >/dev/null 2>&1'

# a Hugging Face Hub listing of the folder, as the tree API returns it and huggingface_hub reads it
# (src/huggingface_hub/hf_api.py at ee0a4510f: list_repo_tree, line 4101, RepoFile.__init__, lines
# 829-835: "path", "size", "oid" the git blob id, "lfs": {"oid": SHA-256, "size", "pointerSize"}; a
# folder is {"type": "directory"}), and as model info's "siblings" (lines 1088-1095: "rfilename",
# "blobId", "lfs": {"sha256", ...}).  Digests from the real tools: sha256sum for LFS files (the
# shards), git hash-object for the others.
hub() {   # hub tree|siblings FOLDER > JSON
    (cd "$2" && for f in config.json generation_config.json model.safetensors.index.json original/params.json \
                      model-00001-of-00002.safetensors model-00002-of-00002.safetensors; do
        size=$(stat -c %s "$f")
        case "$f" in
        *.safetensors) printf '%s %s lfs %s\n' "$f" "$size" "$(sha256sum "$f" | cut -c1-64)" ;;
        *) printf '%s %s git %s\n' "$f" "$size" "$(git hash-object "$f")" ;;
        esac
    done) | /usr/bin/python3 -c 'import json, sys
kind = sys.argv[1]
out = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": "original"}] if kind == "tree" else []
for line in sys.stdin:
    path, size, how, digest = line.split()
    size = int(size)
    if kind == "tree":
        e = {"type": "file", "oid": "f" * 40 if how == "lfs" else digest, "size": size if how == "git" else 135,
             "path": path}
        if how == "lfs":
            e["lfs"] = {"oid": digest, "size": size, "pointerSize": 135}
    else:
        e = {"rfilename": path, "size": size, "blobId": "f" * 40 if how == "lfs" else digest}
        if how == "lfs":
            e["lfs"] = {"sha256": digest, "size": size, "pointerSize": 135}
    out.append(e)
print(json.dumps(out if kind == "tree" else {"id": "org/model", "sha": "0" * 40, "siblings": out}, indent=2))' "$1"
}
hub tree "$d" >"$t/tree.json"
hub siblings "$d" >"$t/siblings.json"
check "a Hub tree listing is checked: LFS files by SHA-256, the others by git blob id (exit 0)" \
    '"$ckpt" verify "$d" --sums "$t/tree.json" -v >"$t/out" 2>&1 && [ "$(grep -c "^ok .*SHA-256 matches" "$t/out")" -eq 2 ] &&
     [ "$(grep -c "^ok .*git blob id matches" "$t/out")" -eq 4 ]'
check "a Hub model info's siblings are checked the same way" \
    '"$ckpt" verify "$d" --sums "$t/siblings.json" >/dev/null 2>&1'
cp -r "$d" "$t/bad"
printf 'X' | dd of="$t/bad/model-00002-of-00002.safetensors" bs=1 seek=5000 conv=notrunc 2>/dev/null
rm "$t/bad/original/params.json"
"$ckpt" verify "$t/bad" --sums "$t/ref.sha256" >"$t/out" 2>&1
status=$?
check "a changed byte and a missing file fail verify (exit 1)" '[ "$status" -eq 1 ]'
check "... naming the changed file with both digests" \
    'grep -q "^FAIL file  *model-00002-of-00002.safetensors: SHA-256 [0-9a-f]\{64\}, the list says" "$t/out"'
check "... and the missing one" 'grep -q "^FAIL file  *original/params.json: missing" "$t/out"'
"$ckpt" verify "$t/bad" --sums "$t/ref.sha256" --ignore-missing >"$t/out" 2>&1
status=$?
check "--ignore-missing: the missing file is not reported, the changed one still fails (exit 1)" \
    '[ "$status" -eq 1 ] && ! grep -q "params.json" "$t/out" && grep -q "^FAIL file  *model-00002" "$t/out" &&
     grep -q "^verify: 7 checks, 1 failed" "$t/out"'
check "... as sha256sum --ignore-missing reports it" \
    '(cd "$t/bad" && sha256sum -c --quiet --ignore-missing "$t/ref.sha256" 2>&1) | grep -v params.json | grep -q "model-00002.*FAILED"'
mkdir "$t/empty-dir"
check "--ignore-missing with none of the listed files there still fails (exit 1)" \
    '"$ckpt" verify "$t/empty-dir" --sums "$t/ref.sha256" --ignore-missing 2>&1 | grep -q "none of the 8 files"'
check "--ignore-missing without --sums is a usage error (exit 2)" \
    '"$ckpt" verify "$t/bad" --ignore-missing 2>/dev/null; [ $? -eq 2 ]'
check "... and sha256sum -c agrees it is broken" '! (cd "$t/bad" && sha256sum -c --quiet "$t/ref.sha256" >/dev/null 2>&1)'
"$ckpt" verify "$t/bad" --sums "$t/ref.xxh128" --json >"$t/json" 2>/dev/null
"$ckpt" verify "$t/bad" --sums "$t/tree.json" >"$t/out" 2>&1
check "... and against the Hub listing the changed shard fails by SHA-256, the missing file as missing" \
    'grep -q "^FAIL file  *model-00002-of-00002.safetensors: SHA-256" "$t/out" && grep -q "original/params.json: missing" "$t/out"'
cp "$t/bad/config.json" "$t/config.keep"; printf ' ' >>"$t/bad/config.json"
check "... and a changed small file by its git blob id" \
    '"$ckpt" verify "$t/bad" --sums "$t/tree.json" 2>&1 | grep -q "^FAIL file  *config.json: [0-9]* bytes, the list says"'
cp "$t/config.keep" "$t/bad/config.json"
check "--json reports the two failures" 'grep -q "\"failures\": 2" "$t/json"'

# a name with a line break: sha256sum escapes it; xxhsum 0.8.1 cannot, so it is refused for xxh128
mkdir "$t/nl" && printf 'a' >"$t/nl/$(printf 'two\nlines')"
check "a name with a line break: escaped as sha256sum does, and sha256sum -c accepts it" \
    '"$ckpt" manifest sums "$t/nl" --format sha256 >"$t/nl.sha256" && (cd "$t/nl" && sha256sum -c --quiet "$t/nl.sha256") &&
     "$ckpt" verify "$t/nl" --sums "$t/nl.sha256" >/dev/null 2>&1'
check "... refused for xxh128 before any hashing (exit 3), one line" \
    '"$ckpt" manifest sums "$t/nl" >"$t/out" 2>"$t/err"; [ $? -eq 3 ] && [ ! -s "$t/out" ] && [ "$(wc -l <"$t/err")" -eq 1 ]'

# the manifest ckpt convert writes is a list too
"$ckpt" convert "$td/sample" "$t/conv" --target ascend-910b --quiet >/dev/null 2>&1
check "verify --sums takes a ckpt-manifest.json" '"$ckpt" verify "$t/conv" --sums "$t/conv/ckpt-manifest.json" >/dev/null 2>&1'
printf 'x' >>"$t/conv/config.json"
check "... and finds a file of another size without reading it" \
    '"$ckpt" verify "$t/conv" --sums "$t/conv/ckpt-manifest.json" 2>&1 | grep -q "config.json: [0-9]* bytes, the list says"'

# hostile lists: refused at once (exit 3), one line naming the list and the line
h=$(printf '%064d' 0)
refused() {   # refused WHAT LINE NEEDLE: a list whose second line is LINE
    printf '%s  config.json\n%s\n' "$(cd "$d" && sha256sum config.json | cut -c1-64)" "$2" >"$t/hostile"
    "$ckpt" verify "$d" --sums "$t/hostile" >"$t/out" 2>"$t/err"
    status=$? needle=$3
    check "a list with $1 is refused (exit 3) naming file:line" \
        '[ "$status" -eq 3 ] && [ "$(wc -l <"$t/err")" -eq 1 ] && grep -q "hostile:2: .*$needle" "$t/err" && [ ! -s "$t/out" ]'
}
refused "a path climbing out" "$h  ../../etc/passwd" "climbs out"
refused "a path climbing out midway" "$h  original/../../x" "climbs out"
refused "an absolute path" "$h  /etc/passwd" "absolute path"
refused "a tagged absolute path" "SHA256 (/etc/shadow) = $h" "absolute path"
refused "a bad hex digit" "$(printf '%063dz' 0)  config.json" "expected 32"
refused "a bad hex digit in a tagged line" "SHA256 (config.json) = $(printf '%063dz' 0)" "bad hex digit"
refused "a digest too short" "0123456789abcdef  config.json" "16 hex digits"
refused "a tagged digest of the wrong length" "XXH128 (config.json) = $h" "not 32 hex digits"
refused "one space after the digest" "$h config.json" "two spaces"
refused "a tagged line without ' = '" "SHA256 (config.json) $h" "ALGO (NAME) = DIGEST"
refused "an unknown escape" "\\$h  a\\tb" "unknown escape"
refused "a path listed twice" "$h  ./config.json" "listed again (first on line 1)"
refused "the folder itself" "$h  ./" "names the folder itself"
refused "a line of 9000 bytes" "$h  $(head -c 9000 /dev/zero | tr '\0' a)" "longer than 8192"
hostile_json() {   # hostile_json WHAT JSON NEEDLE
    printf '%s' "$2" >"$t/hostile.json"
    "$ckpt" verify "$d" --sums "$t/hostile.json" >"$t/out" 2>"$t/err"
    status=$? needle=$3
    check "a Hub listing with $1 is refused (exit 3)" \
        '[ "$status" -eq 3 ] && [ "$(wc -l <"$t/err")" -eq 1 ] && grep -q "hostile.json:.*$needle" "$t/err"'
}
hostile_json "a path climbing out" '[{"type": "file", "path": "../x", "size": 1, "oid": "'"$(printf '%040d' 0)"'"}]' "climbs out"
hostile_json "an absolute path" '{"siblings": [{"rfilename": "/etc/passwd", "size": 1, "blobId": "'"$(printf '%040d' 0)"'"}]}' "absolute"
hostile_json "a short git id" '[{"type": "file", "path": "config.json", "size": 1, "oid": "abc"}]' "not 40 hex digits"
hostile_json "an LFS digest with a bad digit" \
    '[{"type": "file", "path": "a", "size": 1, "oid": "x", "lfs": {"oid": "'"$(printf '%063dz' 0)"'", "size": 1}}]' "bad hex digit"
hostile_json "no size" '[{"type": "file", "path": "config.json", "oid": "'"$(printf '%040d' 0)"'"}]' "needs a path"
hostile_json "an unknown entry type" '[{"type": "link", "path": "x"}]' "neither file nor directory"
hostile_json "siblings without checksums" '{"siblings": [{"rfilename": "config.json"}]}' "needs a path"
hostile_json "another JSON document" '{"weights": []}' "must be a ckpt-manifest.json"
printf '%s  a\0b\n' "$h" >"$t/nul"
check "a list with a NUL byte is refused naming its line" \
    '"$ckpt" verify "$d" --sums "$t/nul" 2>&1 >/dev/null | grep -q "nul:1: line holds a NUL byte"'
: >"$t/empty"
check "an empty list is refused (exit 3)" '"$ckpt" verify "$d" --sums "$t/empty" 2>/dev/null; [ $? -eq 3 ]'
head -c 70000000 /dev/zero >"$t/huge"
check "a list over 64 MiB is refused without reading it (exit 3)" \
    '"$ckpt" verify "$d" --sums "$t/huge" 2>&1 | grep -q "larger than 64 MiB"'
check "--sums with --against is a usage error (exit 2)" \
    '"$ckpt" verify "$d" --sums "$t/ref.sha256" --against "$td/sample" 2>/dev/null; [ $? -eq 2 ]'
check "--format takes xxh128 or sha256 only (exit 2)" '"$ckpt" manifest sums "$d" --format md5 2>/dev/null; [ $? -eq 2 ]'
