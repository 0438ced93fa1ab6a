#!/bin/sh
# torch_convert.sh CKPT GEN_CHECKPOINT GEN_TORCH: the bench checkpoint as torch.save .bin shards
# (bench/gen_torch.c writes the same tensors and bytes as the safetensors one): ckpt convert and
# verify of it against cp of the same bytes, a check that both sources convert to the same tensors,
# and, where Debian's python3-torch is installed, the straightforward Python route
# (bench/python_route.py) on the same input.  Prints a table and writes JSON.
#   BENCH_DIR, SIZE_MIB, JOBS as for convert.sh
set -eu
ckpt=$1
gen_st=$2
gen_torch=$3
dir=${BENCH_DIR:-/tmp/ckpt-bench}/torch
size=${SIZE_MIB:-2048}
jobs=${JOBS:-2}
here=$(dirname "$0")
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

"$gen_torch" bin "$dir/bin" "$size" 4
bytes=$(du -sb "$dir/bin" | cut -f1)
cat "$dir"/bin/* >/dev/null

seconds() { /usr/bin/time -f "%e %M" -o "$dir/time" "$@" >/dev/null 2>&1; cat "$dir/time"; }

sync   # the generator's bytes are on disk before the baseline starts
cp_t=$(seconds sh -c "cp -r '$dir/bin' '$dir/copy' && sync" | cut -d' ' -f1)   # convert fsyncs its output too
rm -rf "$dir/copy"
set -- $(seconds "$ckpt" inspect "$dir/bin")
insp_t=$1 insp_rss=$2
set -- $(seconds "$ckpt" convert "$dir/bin" "$dir/out" --target ascend-310p --jobs "$jobs" --quiet)
conv_t=$1 conv_rss=$2
set -- $(seconds "$ckpt" verify "$dir/out" --jobs "$jobs")
ver_t=$1 ver_rss=$2

# the same model as safetensors must convert to the same tensors
"$gen_st" "$dir/st" "$size" 4
"$ckpt" convert "$dir/st" "$dir/out-st" --target ascend-310p --jobs "$jobs" --quiet >/dev/null
rm -rf "$dir/st"
"$ckpt" diff "$dir/out" "$dir/out-st" >/dev/null ||
    { echo "bench: .bin and safetensors sources converted to different tensors" >&2; exit 1; }
rm -rf "$dir/out-st"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mibs() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", (t > 0 ? b / t / 1048576 : 0) }'; }

py_t=null py_rss=0
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    rm -rf "$dir/out"   # room for Python's output
    set -- $(seconds /usr/bin/python3 "$here/python_route.py" "$dir/bin" "$dir/py")
    py_t=$1 py_rss=$2
    [ -n "$(ls "$dir/py")" ] || { echo "bench: the Python route wrote nothing" >&2; exit 1; }
fi

printf '\n%-44s %10s %10s %12s\n' "torch.save benchmark ($((bytes >> 20)) MiB bf16 .bin, 4 shards)" "seconds" "MiB/s" \
    "vs baseline"
printf '%-44s %10s %10s %12s\n' "cp -r + sync (baseline)" "$cp_t" "$(mibs "$cp_t")" "1.00"
printf '%-44s %10s %10s %12s\n' "ckpt convert --target ascend-310p --jobs $jobs" "$conv_t" "$(mibs "$conv_t")" \
    "$(ratio "$cp_t" "$conv_t")x cp"
printf '%-44s %10s %10s %12s\n' "ckpt verify --jobs $jobs (of the output)" "$ver_t" "$(mibs "$ver_t")" ""
printf '%-44s %10s %10s %12s\n' "ckpt inspect" "$insp_t" "" ""
if [ "$py_t" = null ]; then
    echo "Python route: skipped (/usr/bin/python3 cannot import torch; apt-get install python3-torch)"
else
    printf '%-44s %10s %10s %12s\n' "Python: torch.load, .half(), NZ, torch.save" "$py_t" "$(mibs "$py_t")" \
        "$(ratio "$py_t" "$conv_t")x slower"
    printf 'ckpt convert is %sx the Python route (goal >= 5x)\n' "$(ratio "$py_t" "$conv_t")"
fi
printf 'peak RSS: inspect %d MiB, convert %d MiB, verify %d MiB, Python route %d MiB (largest tensor 32 MiB)\n' \
    $((insp_rss / 1024)) $((conv_rss / 1024)) $((ver_rss / 1024)) $((py_rss / 1024))

cat > "${BENCH_JSON:-bench-torch.json}" <<JSON
{"bytes": $bytes, "jobs": $jobs, "cp_seconds": $cp_t, "inspect_seconds": $insp_t, "inspect_peak_rss_kib": $insp_rss,
 "convert_310p_seconds": $conv_t, "convert_vs_cp": $(ratio "$cp_t" "$conv_t"), "convert_peak_rss_kib": $conv_rss,
 "verify_seconds": $ver_t, "verify_peak_rss_kib": $ver_rss,
 "python_route_seconds": $py_t, "python_route_peak_rss_kib": $py_rss,
 "convert_vs_python": $( [ "$py_t" = null ] && echo null || ratio "$py_t" "$conv_t")}
JSON
