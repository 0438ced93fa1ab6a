#!/bin/sh
# convert.sh CKPT GEN: convert and verify throughput against cp and cat of the same
# bytes, measured in the same run, and peak RSS; prints a table and writes JSON.
# Everything runs from the page cache (warmed first), so the ratios compare the work
# each tool does per byte, not the disk.
#   BENCH_DIR   where to generate (default /tmp/ckpt-bench; needs about 3x SIZE_MIB free)
#   SIZE_MIB    checkpoint size (default 2048; make bench runs BENCH_SIZES, default "2048 4096")
#   JOBS        --jobs for convert (default 2)
set -eu
ckpt=$1
gen=$2
dir=${BENCH_DIR:-/tmp/ckpt-bench}
size=${SIZE_MIB:-2048}
jobs=${JOBS:-2}
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

"$gen" "$dir/src" "$size" 4
bytes=$(du -sb "$dir/src" | cut -f1)
cat "$dir"/src/* >/dev/null   # warm the page cache: every run below reads the same cached bytes

seconds() { /usr/bin/time -f "%e %M" -o "$dir/time" "$@" >/dev/null 2>&1; cat "$dir/time"; }

sync   # the generator's bytes are on disk before the baseline starts
cp_t=$(seconds sh -c "cp -r '$dir/src' '$dir/copy' && sync" | cut -d' ' -f1)   # convert fsyncs its output too
rm -rf "$dir/copy"
cat_t=$(seconds sh -c "cat '$dir'/src/* > /dev/null" | cut -d' ' -f1)
set -- $(seconds "$ckpt" inspect "$dir/src")
insp_t=$1 insp_rss=$2
set -- $(seconds "$ckpt" convert "$dir/src" "$dir/out" --target ascend-310p --jobs "$jobs" --quiet)
conv_t=$1 conv_rss=$2
set -- $(seconds "$ckpt" convert "$dir/src" "$dir/o910" --target ascend-910b --jobs "$jobs" --quiet)
c910_t=$1 c910_rss=$2
rm -rf "$dir/o910"
set -- $(seconds "$ckpt" convert "$dir/src" "$dir/ond" --target nd --jobs "$jobs" --quiet)
cnd_t=$1 cnd_rss=$2
rm -rf "$dir/ond"
# 4 processes of --part K/4 (one job each), then the merge: the scale-out path on one machine
cat > "$dir/parts.sh" <<EOS
for k in 1 2 3 4; do "$ckpt" convert "$dir/src" "$dir/oparts" --target ascend-310p --jobs 1 --quiet --part \$k/4 & done
wait && "$ckpt" manifest merge "$dir/oparts"
EOS
set -- $(seconds sh "$dir/parts.sh")
parts_t=$1
cmp -s "$dir/out/ckpt-manifest.json" "$dir/oparts/ckpt-manifest.json" || { echo "bench: --part result differs" >&2; exit 1; }
rm -rf "$dir/oparts"
out_bytes=$(du -sb "$dir/out" | cut -f1)
sync   # write back convert's output now, so that writeback does not run under the timings below
cat "$dir"/out/* >/dev/null
cat_out_t=$(seconds sh -c "cat '$dir'/out/* > /dev/null" | cut -d' ' -f1)
set -- $(seconds "$ckpt" verify "$dir/out" --jobs "$jobs")
ver_t=$1 ver_rss=$2
set -- $(seconds "$ckpt" verify "$dir/out" --against "$dir/src" --jobs "$jobs")
against_t=$1 against_rss=$2
largest=$(( 4096 * 4096 * 2 ))

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mibs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", (t > 0 ? b / t / 1048576 : 0) }'; }

printf '\n%-44s %10s %10s %12s\n' "convert benchmark ($((bytes >> 20)) MiB bf16, 4 shards)" "seconds" "MiB/s" "vs baseline"
printf '%-44s %10s %10s %12s\n' "cp -r + sync (baseline)" "$cp_t" "$(mibs "$cp_t")" "1.00"
printf '%-44s %10s %10s %12s\n' "cat > /dev/null" "$cat_t" "$(mibs "$cat_t")" ""
printf '%-44s %10s %10s %12s\n' "ckpt convert --target ascend-310p --jobs $jobs" "$conv_t" "$(mibs "$conv_t")" \
    "$(ratio "$cp_t" "$conv_t")x cp"
printf '%-44s %10s %10s %12s\n' "ckpt convert --target ascend-910b" "$c910_t" "$(mibs "$c910_t")" "$(ratio "$cp_t" "$c910_t")x cp"
printf '%-44s %10s %10s %12s\n' "ckpt convert --target nd" "$cnd_t" "$(mibs "$cnd_t")" "$(ratio "$cp_t" "$cnd_t")x cp"
printf '%-44s %10s %10s %12s\n' "4 x convert --part K/4 + manifest merge" "$parts_t" "$(mibs "$parts_t")" \
    "$(ratio "$cp_t" "$parts_t")x cp"
printf '%-44s %10s %10s %12s\n' "ckpt inspect" "$insp_t" "" ""
printf '%-44s %10s %10s %12s\n' "cat output > /dev/null (baseline)" "$cat_out_t" "$(mibs "$cat_out_t")" "1.00"
printf '%-44s %10s %10s %12s\n' "ckpt verify --jobs $jobs" "$ver_t" "$(mibs "$ver_t")" "$(ratio "$cat_out_t" "$ver_t")x cat"
printf '%-44s %10s %10s %12s\n' "ckpt verify --against --jobs $jobs" "$against_t" "$(mibs "$against_t")" \
    "$(ratio "$cp_t" "$against_t")x cp"
printf 'peak RSS: inspect %d MiB, convert 910b %d MiB, nd %d MiB\n' $((insp_rss / 1024)) $((c910_rss / 1024)) \
    $((cnd_rss / 1024))
printf 'peak RSS: convert %d MiB, verify %d MiB, verify --against %d MiB (largest tensor %d MiB; goal <= largest + 64 MiB)\n' \
    $((conv_rss / 1024)) $((ver_rss / 1024)) $((against_rss / 1024)) $((largest >> 20))

cat > "${BENCH_JSON:-bench-convert.json}" <<JSON
{"bytes": $bytes, "jobs": $jobs, "cp_seconds": $cp_t, "cat_seconds": $cat_t,
 "convert_310p_seconds": $conv_t, "convert_vs_cp": $(ratio "$cp_t" "$conv_t"),
 "convert_peak_rss_kib": $conv_rss, "output_bytes": $out_bytes, "cat_output_seconds": $cat_out_t,
 "verify_seconds": $ver_t, "verify_vs_cat": $(ratio "$cat_out_t" "$ver_t"), "verify_peak_rss_kib": $ver_rss,
 "verify_against_seconds": $against_t, "verify_against_peak_rss_kib": $against_rss,
 "inspect_seconds": $insp_t, "inspect_peak_rss_kib": $insp_rss,
 "convert_910b_seconds": $c910_t, "convert_910b_peak_rss_kib": $c910_rss,
 "convert_nd_seconds": $cnd_t, "convert_nd_peak_rss_kib": $cnd_rss, "parts4_seconds": $parts_t,
 "largest_tensor_bytes": $largest}
JSON
