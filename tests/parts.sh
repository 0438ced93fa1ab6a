#!/bin/sh
# parts.sh: `convert --part K/N` in 4 parallel processes, then `manifest merge`,
# must give the very bytes of a one-process conversion; merge refuses missing,
# foreign or mixed parts with one line (exit 3) and leaves no DST.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

ckpt=${CKPT_BIN:-build/ckpt}
src=${CKPT_TESTDATA:-testdata}/sample
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
opts="--target ascend-310p --max-shard-size 20KB --quiet"

# parts K of 4 in parallel; returns non-zero when any failed
parts() {
    dst=$1
    shift
    pids=""
    for k in "$@"; do
        "$ckpt" convert "$src" "$dst" $opts --part "$k/4" >/dev/null 2>"$t/err.$k" &
        pids="$pids $!"
    done
    ok=0
    for p in $pids; do wait "$p" || ok=1; done
    return $ok
}

# merge expected to refuse: exit 3, one line naming the problem, no DST
refuses() {
    "$ckpt" manifest merge "$1" >/dev/null 2>"$t/merge.err"
    status=$?
    [ "$status" -eq 3 ] && [ "$(wc -l <"$t/merge.err")" -eq 1 ] && grep -q "$2" "$t/merge.err" && ! test -e "$1"
}

"$ckpt" convert "$src" "$t/one" $opts >/dev/null
check "a one-process conversion with 13 shards" 'test "$(ls "$t/one" | grep -c safetensors$)" -eq 13'
check "4 parts in parallel" 'parts "$t/many" 1 2 3 4'
check "no part writes DST itself" '! test -e "$t/many"'
check "each part holds a share of the shards" \
    'for k in 1 2 3 4; do test "$(ls "$t/many.ckpt-parts/part-$k-of-4" | grep -c safetensors$)" -ge 3 || exit 1; done'
check "verify does not accept a part folder" '! "$ckpt" verify "$t/many.ckpt-parts/part-1-of-4" >/dev/null 2>&1'
check "merge" '"$ckpt" manifest merge "$t/many" >/dev/null'
check "merged folder is byte-identical to the one-process one" 'diff -r "$t/one" "$t/many"'
check "every file compared byte for byte" \
    'for f in "$t"/one/*; do cmp -s "$f" "$t/many/$(basename "$f")" || exit 1; done'
check "the staging folder is gone" '! test -e "$t/many.ckpt-parts"'
check "verify accepts the merged folder" '"$ckpt" verify "$t/many" >/dev/null'
check "verify --against the source accepts it" '"$ckpt" verify "$t/many" --against "$src" >/dev/null'

parts "$t/gap" 1 2 4
check "a missing part is refused" 'refuses "$t/gap" "part 3 of 4 is missing"'
"$ckpt" convert "$src" "$t/gap" --target ascend-310p --max-shard-size 20KB --overflow inf --quiet --part 3/4 \
    >/dev/null 2>&1
check "a part made with other options is refused" 'refuses "$t/gap" "part-3-of-4: made from another plan"'
"$ckpt" convert "$src" "$t/gap" $opts --part 3/4 --force >/dev/null 2>&1
"$ckpt" convert "$src" "$t/gap" $opts --part 1/2 >/dev/null 2>&1
check "parts of two partitions are refused" 'refuses "$t/gap" "different partitions"'
rm -rf "$t/gap.ckpt-parts/part-1-of-2"
# what a part killed mid-run leaves: an unlocked temporary folder with a partial shard
mkdir "$t/gap.ckpt-parts/.part-2-of-4.ckpt-tmp-dead" && head -c 100 "$t/one/model-00001-of-00013.safetensors" \
    >"$t/gap.ckpt-parts/.part-2-of-4.ckpt-tmp-dead/model-00002-of-00013.safetensors"
rm -rf "$t/gap.ckpt-parts/part-2-of-4"
check "a killed part's leftovers do not count as the part" 'refuses "$t/gap" "part 2 of 4 is missing"'
check "rerunning the part clears its leftovers" \
    'parts "$t/gap" 2 && ! test -e "$t/gap.ckpt-parts/.part-2-of-4.ckpt-tmp-dead"'
check "then merge gives the same bytes" '"$ckpt" manifest merge "$t/gap" >/dev/null && diff -r "$t/one" "$t/gap"'

check "a part refuses an existing DST" '! "$ckpt" convert "$src" "$t/one" $opts --part 1/4 2>/dev/null'
parts "$t/late" 1 2 3 4
mkdir "$t/late"
check "merge refuses an existing DST and keeps the parts" \
    '! "$ckpt" manifest merge "$t/late" 2>/dev/null && test -z "$(ls "$t/late")" && test -d "$t/late.ckpt-parts"'
check "merge --force replaces it" '"$ckpt" manifest merge "$t/late" --force >/dev/null && diff -r "$t/one" "$t/late"'
check "merge without parts is refused" \
    '"$ckpt" manifest merge "$t/none" 2>/dev/null; test $? -eq 3'
check "--part 0/4 and 5/4 are usage errors" \
    '"$ckpt" convert "$src" "$t/x" --part 0/4 2>/dev/null; a=$?;
     "$ckpt" convert "$src" "$t/x" --part 5/4 2>/dev/null; b=$?; test $a -eq 2 && test $b -eq 2'

# a quantized NZ device image in parts: the same bytes as in one process (options recorded, C0 included)
opts="--target ascend-910b --quant w8a8-dynamic --nz all --max-shard-size 20KB --quiet"
"$ckpt" convert "$src" "$t/qone" $opts >/dev/null 2>&1
check "--quant --nz all in 4 parts merges into the one-process bytes" \
    'parts "$t/qparts" 1 2 3 4 && "$ckpt" manifest merge "$t/qparts" >/dev/null && diff -r "$t/qone" "$t/qparts"'
