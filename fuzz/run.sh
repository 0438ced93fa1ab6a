#!/bin/sh
# run.sh SECONDS TARGET...: runs each libFuzzer target for SECONDS, seeded from the
# project's fixtures and ../shared/external; fails on any crash, leak or timeout.
# New crashers are left in build-fuzz/crashes/ (minimise them and add them to fuzz/regressions/).
# FUZZ_TIMEOUT overrides the 10 s per input (a niced run on a busy machine needs more wall time).
set -u
. fuzz/seed.sh
seconds=$1
shift
root=$(pwd)
status=0
for target in "$@"; do
    name=$(basename "$target")
    corpus="build-fuzz/corpus/$name"
    seeds="fuzz/seeds/$name"
    mkdir -p "$corpus" "build-fuzz/crashes/$name" "$seeds" "fuzz/regressions/$name"
    seed_corpus "$name" "$corpus"
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
