#!/bin/sh
# campaign.sh CPU_MINUTES TARGET...: a long local fuzzing run. Each target runs until its own
# process has used CPU_MINUTES of CPU time (so a busy machine lengthens the run, not shortens
# the fuzzing), two at a time (FUZZ_PARALLEL), niced, on the corpus run.sh keeps in
# build-fuzz/corpus/. Prints and appends to build-fuzz/campaign.tsv one line a target:
# name, CPU seconds, inputs executed, corpus size, and clean, slow units or the failure.
set -u
. fuzz/seed.sh
minutes=$1
shift
limit=$((minutes * 60))
ticks=$(getconf CLK_TCK)
parallel=${FUZZ_PARALLEL:-2}

cpu_seconds() {   # utime + stime of process $1, in seconds
    awk -v t="$ticks" '{ sub(/^.*\) /, ""); print int(($12 + $13) / t) }' "/proc/$1/stat" 2>/dev/null || echo 0
}

fuzz_one() {
    target=$1
    name=$(basename "$target")
    corpus="build-fuzz/corpus/$name"
    mkdir -p "$corpus" "build-fuzz/crashes/$name" "fuzz/seeds/$name" "fuzz/regressions/$name"
    seed_corpus "$name" "$corpus"
    log="build-fuzz/$name.campaign.log"
    nice -n 19 "$target" -timeout="${FUZZ_TIMEOUT:-60}" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/crashes/$name/" "$corpus" "fuzz/seeds/$name" "fuzz/regressions/$name" \
        >"$log" 2>&1 &
    pid=$!
    used=0
    while kill -0 "$pid" 2>/dev/null; do
        used=$(cpu_seconds "$pid")
        [ "$used" -ge "$limit" ] && kill -INT "$pid"
        sleep 10
    done
    wait "$pid"
    rc=$?
    # crash-, leak-, timeout- and oom- files are failures; slow-unit- ones (past 10 s) are reported too
    found=$(ls "build-fuzz/crashes/$name/")
    result=clean
    echo "$found" | grep -q '^slow-unit-' && result="slow units: $(echo "$found" | grep -c '^slow-unit-')"
    echo "$found" | grep -qv -e '^slow-unit-' -e '^$' && result="failed: $(echo "$found" | grep -v '^slow-unit-' | head -n 1)"
    [ "$used" -lt "$limit" ] && [ "$result" = clean ] && result="stopped early (exit $rc)"
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{ print $2 }')
    line=$(printf '%s\t%s\t%s\t%s\t%s' "$name" "$used" "${runs:-?}" "$(ls "$corpus" | wc -l)" "$result")
    echo "$line"
    echo "$line" >>build-fuzz/campaign.tsv
}

lane=0
while [ "$lane" -lt "$parallel" ]; do   # lane L takes targets L, L + parallel, ...
    (
        i=0
        for target in "$@"; do
            [ $((i % parallel)) -eq "$lane" ] && fuzz_one "$target"
            i=$((i + 1))
        done
    ) &
    lane=$((lane + 1))
done
wait
