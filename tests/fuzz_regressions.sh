#!/bin/sh
# fuzz_regressions.sh: every minimised crasher in fuzz/regressions/TARGET/ replayed through
# TARGET built without libFuzzer (make check builds them in $CKPT_BUILD/fuzz-replay/; under
# check-asan with ASan+UBSan): each must run to the end, neither crashing nor hanging.
set -u
status=0
for dir in fuzz/regressions/*/; do
    name=$(basename "$dir")
    bin="$CKPT_BUILD/fuzz-replay/$name"
    for input in "$dir"*; do
        [ -f "$input" ] || continue
        if [ ! -x "$bin" ]; then
            echo "not ok - $input: no replay binary $bin"
            status=1
        elif timeout 60 "$bin" "$input" >/dev/null 2>&1; then
            echo "ok - $name replays $(basename "$input")"
        else
            echo "not ok - $name crashed or hung on $input"
            status=1
        fi
    done
done
exit $status
