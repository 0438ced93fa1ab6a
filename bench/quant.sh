#!/bin/sh
# quant.sh CKPT GEN: `convert --target ascend-910b --quant w8a8-dynamic` of a generated bf16
# checkpoint (bench/gen_checkpoint.c: 4096 x 4096 Llama-named projections), RUNS times alternated
# with its baseline (cp -r + sync of the same folder), median, min and max of the wall time and of
# the CPU time (user + system, the convert process and the baseline's cp and sync), and the peak
# RSS of convert beside the largest tensor: the quantizer streams row blocks.  From the page cache
# (warmed first).  Prints a table and writes JSON.
#   BENCH_DIR (default /tmp/ckpt-bench), SIZE_MIB (default 1024), JOBS (default 2), RUNS (default 5)
set -eu
ckpt=$1
gen=$2
dir=${BENCH_DIR:-/tmp/ckpt-bench}/quant
size=${SIZE_MIB:-1024}
jobs=${JOBS:-2}
runs=${RUNS:-5}
[ "$runs" -ge 5 ] || { echo "bench: RUNS must be at least 5" >&2; exit 2; }
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

"$gen" "$dir/src" "$size" 4 >/dev/null
bytes=$(du -sb "$dir/src" | cut -f1)
cat "$dir"/src/* >/dev/null
sync

# wall seconds, CPU seconds (user + system), peak RSS KiB
measure() { /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$@" >/dev/null 2>&1; awk '{ print $1, $2 + $3, $4 }' "$dir/time"; }
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%s %s %s", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

: > "$dir/cp_wall" && : > "$dir/cp_cpu" && : > "$dir/q_wall" && : > "$dir/q_cpu" && : > "$dir/rss"
i=0
while [ "$i" -lt "$runs" ]; do
    set -- $(measure sh -c "cp -r '$dir/src' '$dir/copy' && sync")
    echo "$1" >> "$dir/cp_wall"
    echo "$2" >> "$dir/cp_cpu"
    rm -rf "$dir/copy"
    set -- $(measure "$ckpt" convert "$dir/src" "$dir/out" --target ascend-910b --quant w8a8-dynamic --jobs "$jobs" --quiet)
    echo "$1" >> "$dir/q_wall"
    echo "$2" >> "$dir/q_cpu"
    echo "$3" >> "$dir/rss"
    rm -rf "$dir/out"
    sync
    i=$((i + 1))
done
for k in cp_wall cp_cpu q_wall q_cpu rss; do
    set -- $(stats < "$dir/$k")
    eval "${k}_med=\$1 ${k}_min=\$2 ${k}_max=\$3"
done
largest=$(( 4096 * 4096 * 2 ))

printf '\n%-52s %22s %22s\n' "quantization benchmark ($((bytes >> 20)) MiB bf16, $runs runs)" "wall s, median (min-max)" \
    "CPU s, median (min-max)"
printf '%-52s %22s %22s\n' "cp -r + sync (baseline)" "$cp_wall_med ($cp_wall_min-$cp_wall_max)" \
    "$cp_cpu_med ($cp_cpu_min-$cp_cpu_max)"
printf '%-52s %22s %22s\n' "ckpt convert --target ascend-910b --quant w8a8-dynamic" \
    "$q_wall_med ($q_wall_min-$q_wall_max)" "$q_cpu_med ($q_cpu_min-$q_cpu_max)"
printf 'peak RSS of convert: median %d MiB, max %d MiB (largest tensor %d MiB)\n' $((rss_med / 1024)) \
    $((rss_max / 1024)) $((largest >> 20))

cat > "${BENCH_JSON:-bench-quant.json}" <<JSON
{"bytes": $bytes, "jobs": $jobs, "runs": $runs,
 "cp_seconds": {"median": $cp_wall_med, "min": $cp_wall_min, "max": $cp_wall_max},
 "cp_cpu_seconds": {"median": $cp_cpu_med, "min": $cp_cpu_min, "max": $cp_cpu_max},
 "quant_seconds": {"median": $q_wall_med, "min": $q_wall_min, "max": $q_wall_max},
 "quant_cpu_seconds": {"median": $q_cpu_med, "min": $q_cpu_min, "max": $q_cpu_max},
 "quant_peak_rss_kib": {"median": $rss_med, "max": $rss_max}, "largest_tensor_bytes": $largest}
JSON
