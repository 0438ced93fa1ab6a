#!/bin/sh
# run.sh SUITE...: runs each Check suite binary, then every tests/*.sh script, and
# closes with one line "N passed, N failed" counting individual checks.
# Environment: CKPT_BIN, CKPT_EXTERNAL, CKPT_TESTDATA, CKPT_BUILD (set by make check).
set -u
passed=0
failed=0
failed_suites=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for suite in "$@"; do
    name=$(basename "$suite")
    "$suite" >"$log" 2>&1
    status=$?
    cat "$log"
    # Check prints: "100%: Checks: 12, Failures: 0, Errors: 0"
    line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
    checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    bad=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2/' | awk '{print $1+$2}')
    if [ -z "$line" ]; then
        checks=1 bad=1
    elif [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1
    fi
    passed=$((passed + checks - bad))
    failed=$((failed + bad))
    [ "$bad" -ne 0 ] && failed_suites="$failed_suites $name"
done

for script in tests/*.sh; do
    [ "$script" = tests/run.sh ] && continue
    name=$(basename "$script" .sh)
    sh "$script" >"$log" 2>&1
    status=$?
    cat "$log"
    ok=$(grep -c '^ok ' "$log")
    bad=$(grep -c '^not ok ' "$log")
    if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1
    fi
    passed=$((passed + ok))
    failed=$((failed + bad))
    [ "$bad" -ne 0 ] && failed_suites="$failed_suites $name"
done

[ -n "$failed_suites" ] && echo "failing:$failed_suites"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
