#!/bin/sh
# megatron.sh CKPT GEN_TORCH: a generated TP=4 Megatron-LM legacy layout (bench/gen_torch.c: GQA,
# SwiGLU, padded vocabulary) opened and converted, timed against cp of the same bytes, with peak
# RSS next to the largest full (merged) tensor: merging streams, so memory stays near that tensor
# plus a constant whatever the model's size.  Prints a table and writes JSON.
#   BENCH_DIR, SIZE_MIB, JOBS as for convert.sh
set -eu
ckpt=$1
gen_torch=$2
dir=${BENCH_DIR:-/tmp/ckpt-bench}/megatron
size=${SIZE_MIB:-2048}
jobs=${JOBS:-2}
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

made=$("$gen_torch" megatron "$dir/src" "$size" 4)
largest=$(echo "$made" | sed -n 's/.*largest full tensor \([0-9]*\) bytes.*/\1/p')
tensors=$(echo "$made" | sed -n 's/.* \([0-9]*\) tensors.*/\1/p')
bytes=$(du -sb "$dir/src" | cut -f1)
find "$dir/src" -type f -exec cat {} + >/dev/null

seconds() { /usr/bin/time -f "%e %M" -o "$dir/time" "$@" >/dev/null 2>&1; cat "$dir/time"; }

sync   # the generator's bytes are on disk before the baseline starts
cp_t=$(seconds sh -c "cp -r '$dir/src' '$dir/copy' && sync" | cut -d' ' -f1)   # convert fsyncs its output too
rm -rf "$dir/copy"
set -- $(seconds "$ckpt" inspect "$dir/src")
insp_t=$1 insp_rss=$2
found=$("$ckpt" inspect "$dir/src" --json | sed -n 's/.*"tensor_count": *\([0-9]*\).*/\1/p' | head -n 1)
[ "$found" = "$tensors" ] || { echo "bench: inspect found ${found:-no} tensors, $tensors were written" >&2; exit 1; }
set -- $(seconds "$ckpt" convert "$dir/src" "$dir/out" --target ascend-310p --jobs "$jobs" --quiet)
conv_t=$1 conv_rss=$2
set -- $(seconds "$ckpt" verify "$dir/out" --against "$dir/src" --jobs "$jobs")
against_t=$1 against_rss=$2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mibs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", (t > 0 ? b / t / 1048576 : 0) }'; }

printf '\n%-44s %10s %10s %12s\n' "Megatron benchmark ($((bytes >> 20)) MiB bf16, TP=4)" "seconds" "MiB/s" "vs baseline"
printf '%-44s %10s %10s %12s\n' "cp -r + sync (baseline)" "$cp_t" "$(mibs "$cp_t")" "1.00"
printf '%-44s %10s %10s %12s\n' "ckpt inspect (merge plan of 4 ranks)" "$insp_t" "" ""
printf '%-44s %10s %10s %12s\n' "ckpt convert --target ascend-310p --jobs $jobs" "$conv_t" "$(mibs "$conv_t")" \
    "$(ratio "$cp_t" "$conv_t")x cp"
printf '%-44s %10s %10s %12s\n' "ckpt verify --against --jobs $jobs" "$against_t" "$(mibs "$against_t")" \
    "$(ratio "$cp_t" "$against_t")x cp"
printf 'peak RSS: inspect %d MiB, convert %d MiB, verify --against %d MiB (largest full tensor %d MiB; goal <= largest + 64 MiB)\n' \
    $((insp_rss / 1024)) $((conv_rss / 1024)) $((against_rss / 1024)) $((largest >> 20))

cat > "${BENCH_JSON:-bench-megatron.json}" <<JSON
{"bytes": $bytes, "jobs": $jobs, "tp": 4, "tensors": $tensors, "cp_seconds": $cp_t,
 "inspect_seconds": $insp_t, "inspect_peak_rss_kib": $insp_rss,
 "convert_310p_seconds": $conv_t, "convert_vs_cp": $(ratio "$cp_t" "$conv_t"), "convert_peak_rss_kib": $conv_rss,
 "verify_against_seconds": $against_t, "verify_against_peak_rss_kib": $against_rss, "largest_tensor_bytes": $largest}
JSON
