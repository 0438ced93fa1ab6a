#!/bin/sh
# run.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS, seeded from the
# project's fixtures and ../shared/external; fails on any crash, leak or timeout.
# New crashers are left in build-fuzz/crashes/ (minimise them and add them to fuzz/regressions/).
# FUZZ_TIMEOUT overrides the 10 s per input (a niced run on a busy machine needs more wall time).
set -u
seconds=$1
shift
root=$(pwd)
status=0
for target in "$@"; do
    name=$(basename "$target")
    corpus="build-fuzz/corpus/$name"
    seeds="fuzz/seeds/$name"
    mkdir -p "$corpus" "build-fuzz/crashes/$name" "$seeds" "fuzz/regressions/$name"
    case "$name" in
    fuzz_safetensors) cp -n testdata/sample/*.safetensors "$EXTERNAL"/*/*.safetensors "$corpus"/ 2>/dev/null ;;
    fuzz_pickle)
        find "$EXTERNAL" -type f -size -1024k \( -name '*.pkl' -o -name '*.pickle' \) -exec cp -n {} "$corpus"/ \; 2>/dev/null ;;
    fuzz_torch_zip | fuzz_torch_legacy)
        find testdata/torch "$EXTERNAL" -type f -size -1024k \( -name '*.pt' -o -name '*.pth' -o -name '*.bin' \) \
            -exec cp -n {} "$corpus"/ \; 2>/dev/null ;;
    fuzz_archive)
        find testdata/archive "$EXTERNAL" -type f -size -1024k \( -name '*.tar' -o -name '*.nemo' -o -name '*.tar.gz' \
            -o -name '*.tar.zst' -o -name '*.zip' \) -exec cp -n {} "$corpus"/ \; 2>/dev/null ;;
    fuzz_dcp_metadata)   # every file is named .metadata: numbered copies
        i=0
        for f in $(find testdata/dcp "$EXTERNAL" -type f -name .metadata -size -1024k 2>/dev/null); do
            i=$((i + 1))
            cp "$f" "$corpus/metadata-$i"
        done ;;
    esac
    echo "== $name: ${seconds}s"
    if ! "$target" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/crashes/$name/" "$corpus" "$seeds" fuzz/regressions/"$name" \
        >"build-fuzz/$name.log" 2>&1; then
        tail -n 40 "build-fuzz/$name.log"
        echo "not ok - $name found a crash, leak or timeout"
        status=1
    else
        grep -E "stat::number_of_executed_units" "build-fuzz/$name.log" | sed "s/^/$name: /"
        echo "ok - $name ran ${seconds}s clean"
    fi
done
cd "$root"
exit $status
