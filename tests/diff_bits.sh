#!/bin/sh
# diff_bits.sh: `ckpt diff` compares bit patterns by default.  testdata/bits (make_bits.py) holds pairs
# that a comparison of values calls equal: -0.0 against +0.0, NaNs of another payload or sign; each is a
# difference (exit 1) named as such.  A tolerance relaxes finite values only: it forgives one ulp and a
# signed zero, never a NaN's bits or an infinity.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bits="$CKPT_TESTDATA/bits"

# CASE MESSAGE STATUS-WITHOUT STATUS-WITH-TOLERANCE
while read -r name message plain relaxed; do
    "$CKPT_BIN" diff "$bits/base.safetensors" "$bits/$name.safetensors" >"$work/out" 2>&1
    status=$?
    check "diff base $name exits $plain (got $status)" '[ "$status" -eq "$plain" ]'
    check "diff base $name says '$message'" 'grep -qF -- "$(echo "$message" | tr _ " ")" "$work/out"'
    "$CKPT_BIN" diff "$bits/base.safetensors" "$bits/$name.safetensors" --max-abs-error 0.001 >/dev/null 2>&1
    status=$?
    check "diff base $name --max-abs-error 0.001 exits $relaxed (got $status)" '[ "$status" -eq "$relaxed" ]'
done <<'CASES'
negative-zero 1_-0.0_against_+0.0 1 0
nan-payload 1_NaN_of_another_sign_or_payload 1 1
nan-sign 1_NaN_of_another_sign_or_payload 1 1
one-ulp 1_of_4_values_differ 1 0
infinity 1_infinite,_NaN_or_undecoded_against_another_value 1 1
CASES
"$CKPT_BIN" diff "$bits/nan-payload.safetensors" "$bits/nan-payload.safetensors" >/dev/null 2>&1
status=$?
check "a NaN equals the same NaN (got $status)" '[ "$status" -eq 0 ]'
"$CKPT_BIN" diff "$bits/base.safetensors" "$bits/nan-payload.safetensors" >"$work/out" 2>&1
check "a BF16 NaN of another payload is a difference too" 'grep -q "FAIL diff *h: 1 of 4 values differ, 1 NaN" "$work/out"'
