#!/bin/sh
# bundle.sh CKPT GEN_WEIGHTS: bundles against their baselines, on bell-curve weights (gen_weights.c:
# normally distributed values, as trained weights are; uniform random bytes would not compress).
#
# Sizes (deterministic): the bundle of a bf16, an f32 and a widened-from-bf16 f32 checkpoint
# against `zstd -19 -T0` and `zstd -1 -T0` of the same files.  Speed, each pair RUNS times (default
# 5), alternated in the same run, median [min, max] of wall and CPU (user + system) seconds, from
# the page cache:
#   ckpt pack                           vs  zstd -1 -T0 of the same files into one file, + sync
#   ckpt convert BUNDLE --target 910b   vs  ckpt convert SRC (the folder) --target 910b
#   ckpt unpack                         vs  cp -r + sync
# and the peak RSS of each ckpt command next to the largest tensor (goal: at most it + 64 MiB).
#   BENCH_DIR  where to work (default /tmp/ckpt-bench-bundle; needs about 4x SIZE_MIB free)
#   SIZE_MIB   the bf16 checkpoint timed (default 1024)
#   RATIO_MIB  the checkpoints measured for size (default 64: ratios do not depend on it, zstd -19's time does)
#   RUNS       runs of each pair (default 5)    JOBS  --jobs for ckpt (default 2)
set -eu
ckpt=$1
gen=$2
dir=${BENCH_DIR:-/tmp/ckpt-bench-bundle}
size=${SIZE_MIB:-1024}
ratio_size=${RATIO_MIB:-64}
runs=${RUNS:-5}
jobs=${JOBS:-2}
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

# ---- sizes ----
printf '\n%-34s %12s %10s %10s %10s %14s\n' "bundle size ($ratio_size MiB)" "bytes" "ckpt pack" "zstd -19" "zstd -1" \
    "vs zstd -19"
for kind in bf16 f32 widened; do
    "$gen" "$dir/$kind" "$ratio_size" 2 "$kind"
    in=$(cat "$dir/$kind"/* | wc -c)
    "$ckpt" pack "$dir/$kind" "$dir/$kind.ckb" --jobs "$jobs" --quiet >/dev/null
    out=$(wc -c <"$dir/$kind.ckb")
    z19=$(zstd -19 -T0 -q -c "$dir/$kind"/* | wc -c)
    z1=$(zstd -1 -T0 -q -c "$dir/$kind"/* | wc -c)
    awk -v k="$kind" -v i="$in" -v o="$out" -v a="$z19" -v b="$z1" 'BEGIN {
        printf "%-34s %12d %9.3fx %9.3fx %9.3fx %13.1f%%\n", k, i, i / o, i / a, i / b, 100 * (1 - o / a) }'
    rm -rf "$dir/$kind" "$dir/$kind.ckb"
done
src="$dir/src" bundle="$dir/src.ckb"
"$gen" "$src" "$size" 4 bf16
"$ckpt" pack "$src" "$bundle" --jobs "$jobs" --quiet >/dev/null
cat "$src"/* "$bundle" >/dev/null   # warm the page cache: every run below reads the same cached bytes
sync

# time_one LABEL CMD...: one run, "wall cpu rss_kib" appended to $dir/LABEL
time_one() {
    label=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$@" >/dev/null 2>&1
    awk '{ printf "%s %.2f %d\n", $1, $2 + $3, $4 }' "$dir/time" >>"$dir/$label"
}

# median [min, max] of column COL of file LABEL
stat_of() {
    sort -n -k"$2" "$dir/$1" | awk -v c="$2" '{ v[NR] = $c } END {
        printf "%.2f [%.2f, %.2f]", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'
}
peak() { sort -n -k3 "$dir/$1" | tail -n 1 | awk '{ printf "%d", $3 / 1024 }'; }

for i in $(seq "$runs"); do
    rm -f "$dir/z.zst" "$dir/p.ckb"
    time_one zstd sh -c "zstd -1 -T0 -q -c '$src'/* > '$dir/z.zst' && sync"
    time_one pack sh -c "'$ckpt' pack '$src' '$dir/p.ckb' --jobs $jobs --quiet && sync"
    rm -rf "$dir/cf" "$dir/cb"
    time_one convert_folder "$ckpt" convert "$src" "$dir/cf" --target ascend-910b --jobs "$jobs" --quiet
    time_one convert_bundle "$ckpt" convert "$bundle" "$dir/cb" --target ascend-910b --jobs "$jobs" --quiet
    rm -rf "$dir/copy" "$dir/un"
    time_one cp sh -c "cp -r '$src' '$dir/copy' && sync"
    time_one unpack sh -c "'$ckpt' unpack '$bundle' '$dir/un' --jobs $jobs --quiet && sync"
done
diff -r -x ckpt-manifest.json "$dir/cf" "$dir/cb" >/dev/null || { echo "bench: convert BUNDLE differs" >&2; exit 1; }
diff -r "$src" "$dir/un" >/dev/null || { echo "bench: unpack differs" >&2; exit 1; }

ratio() {   # the baseline's median wall time over the command's: above 1.00x, faster than the baseline
    a=$(sort -n -k1 "$dir/$1" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    b=$(sort -n -k1 "$dir/$2" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'
}
printf '\n%-44s %24s %24s %12s %8s\n' "bundle speed ($size MiB bf16, $runs runs)" "wall s: median [min, max]" \
    "cpu s: median [min, max]" "vs baseline" "RSS MiB"
row() { printf '%-44s %24s %24s %12s %8s\n' "$1" "$(stat_of "$2" 1)" "$(stat_of "$2" 2)" "$3" "$4"; }
row "zstd -1 -T0 + sync (baseline)" zstd "1.00x" ""
row "ckpt pack --jobs $jobs + sync" pack "$(ratio zstd pack)" "$(peak pack)"
row "convert SRC --target ascend-910b (baseline)" convert_folder "1.00x" "$(peak convert_folder)"
row "convert BUNDLE --target ascend-910b" convert_bundle "$(ratio convert_folder convert_bundle)" "$(peak convert_bundle)"
row "cp -r + sync (baseline)" cp "1.00x" ""
row "ckpt unpack --jobs $jobs + sync" unpack "$(ratio cp unpack)" "$(peak unpack)"
printf 'largest tensor %d MiB: the goal for every RSS above is at most %d MiB\n' 32 96
