#!/bin/sh
# moe.sh CKPT GEN_MOE: a generated Megatron-LM legacy MoE checkpoint (bench/gen_moe.c: TP=2 x EP=2,
# experts over ETP=2, Qwen3-MoE-like) converted with --rename hf, RUNS times alternated with its
# baseline (cp -r + sync of the same folder), median, min and max of each; and the peak RSS of every
# convert next to the largest full (merged) tensor: experts and dense shards are joined as pieces and
# streamed, so memory stays near that tensor plus a constant whatever the model's size.
# Prints a table and writes JSON.
#   BENCH_DIR (default /tmp/ckpt-bench), SIZE_MIB (default 1024), JOBS (default 2), RUNS (default 5)
set -eu
ckpt=$1
gen_moe=$2
dir=${BENCH_DIR:-/tmp/ckpt-bench}/moe
size=${SIZE_MIB:-1024}
jobs=${JOBS:-2}
runs=${RUNS:-5}
[ "$runs" -ge 5 ] || { echo "bench: RUNS must be at least 5" >&2; exit 2; }
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

made=$("$gen_moe" "$dir/src" "$size")
largest=$(echo "$made" | sed -n 's/.*largest full tensor \([0-9]*\) bytes.*/\1/p')
bytes=$(du -sb "$dir/src" | cut -f1)
sync

seconds() { /usr/bin/time -f "%e %M" -o "$dir/time" "$@" >/dev/null 2>&1; cat "$dir/time"; }
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%s %s %s", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

: > "$dir/cp" && : > "$dir/convert" && : > "$dir/rss"
i=0
while [ "$i" -lt "$runs" ]; do
    seconds sh -c "cp -r '$dir/src' '$dir/copy' && sync" | cut -d' ' -f1 >> "$dir/cp"
    rm -rf "$dir/copy"
    set -- $(seconds "$ckpt" convert "$dir/src" "$dir/out" --target nd --rename hf --jobs "$jobs" --quiet)
    echo "$1" >> "$dir/convert"
    echo "$2" >> "$dir/rss"
    rm -rf "$dir/out"
    i=$((i + 1))
done
set -- $(stats < "$dir/cp")
cp_med=$1 cp_min=$2 cp_max=$3
set -- $(stats < "$dir/convert")
conv_med=$1 conv_min=$2 conv_max=$3
set -- $(stats < "$dir/rss")
rss_med=$1 rss_max=$3

printf '\n%-46s %24s\n' "MoE benchmark ($((bytes >> 20)) MiB on disk, $runs runs)" "median (min-max) s"
printf '%-46s %24s\n' "cp -r + sync (baseline)" "$cp_med ($cp_min-$cp_max)"
printf '%-46s %24s\n' "ckpt convert --rename hf --jobs $jobs" "$conv_med ($conv_min-$conv_max)"
printf 'peak RSS of convert: median %d MiB, max %d MiB (largest full tensor %d MiB; goal <= largest + 64 MiB)\n' \
    $((rss_med / 1024)) $((rss_max / 1024)) $((largest >> 20))

cat > "${BENCH_JSON:-bench-moe.json}" <<JSON
{"bytes": $bytes, "jobs": $jobs, "runs": $runs, "tp": 2, "ep": 2, "etp": 2,
 "cp_seconds": {"median": $cp_med, "min": $cp_min, "max": $cp_max},
 "convert_rename_hf_seconds": {"median": $conv_med, "min": $conv_min, "max": $conv_max},
 "convert_peak_rss_kib": {"median": $rss_med, "max": $rss_max}, "largest_tensor_bytes": $largest}
JSON
