#!/bin/sh
# run.sh: every benchmark, each printing its figures as ratios to a baseline
# measured in the same run.  Called by `make bench` with CKPT_BUILD set.
set -eu
for b in "$CKPT_BUILD"/bench/*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b"
done
