#!/bin/sh
# tamper.sh: a hostile editor of a converted folder (docs/verify.md, "Threat model") cannot make
# `ckpt verify --against SRC` pass, and plain `ckpt verify` refuses what no honest folder holds.
# Each case converts testdata/sample, edits the result with tests/tamper/tamper.py (which then
# rewrites every size and hash of the manifest to agree) and checks the exit statuses
# (cli/cli.h: 1 a difference found, 3 the input cannot be trusted or read).
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$CKPT_TESTDATA/sample"
tamper="$(dirname "$0")/tamper/tamper.py"
"$CKPT_BIN" convert "$src" "$work/honest" --target ascend-310p --quiet >/dev/null || echo "not ok - convert"

# case NAME VERIFY AGAINST PINNED OP [ARG...]: the exit statuses of verify, of verify --against with
# the manifest's options, and of verify --against with convert's command line (--target ascend-310p)
case_() {
    name=$1 want="$2 $3 $4"
    shift 4
    rm -rf "$work/t"
    cp -r "$work/honest" "$work/t"
    python3 "$tamper" "$work/t" "$@" || echo "# tamper.py $* failed"
    "$CKPT_BIN" verify "$work/t" >"$work/out" 2>&1
    got=$?
    "$CKPT_BIN" verify "$work/t" --against "$src" >>"$work/out" 2>&1
    got="$got $?"
    "$CKPT_BIN" verify "$work/t" --against "$src" --target ascend-310p >>"$work/out" 2>&1
    got="$got $?"
    check "$name: verify, --against, --against --target exit $want (got $got)" '[ "$got" = "$want" ]'
    [ "$got" = "$want" ] || sed 's/^/# /' "$work/out"
}

"$CKPT_BIN" verify "$work/honest" --against "$src" >/dev/null 2>&1
status=$?
check "the honest folder verifies" '[ $status = 0 ]'

# class 1: options taken from the folder under test.  With the manifest's options the proof is of
# the conversion the manifest records, which is said; pinned to the command line's, it fails.
# The editor need not edit at all: converting with rules that swap two tensors' names makes a folder
# whose every byte and record agrees with the manifest's options.
q=model.layers.0.self_attn.q_proj.weight o=model.layers.0.self_attn.o_proj.weight
printf '%s rename=%s\n%s rename=%s\n' $q $o $o $q > "$work/swap.rules"
"$CKPT_BIN" convert "$src" "$work/swapped" --target ascend-310p --rules "$work/swap.rules" --quiet >/dev/null
"$CKPT_BIN" verify "$work/swapped" --against "$src" >"$work/out" 2>&1
status=$?
check "two tensors swapped by rules: proven against the manifest's options (exit $status)..." '[ $status = 0 ]'
check "... which the summary names as the manifest's" \
    'grep -q "^ok   option     rules = $q rename=$o; .* (manifest)$" "$work/out"'
check "... and the JSON too" \
    '"$CKPT_BIN" verify "$work/swapped" --against "$src" --json | grep -q "\"origin\": \"manifest\""'
"$CKPT_BIN" verify "$work/swapped" --against "$src" --junit "$work/junit.xml" >/dev/null 2>&1
check "... and the JUnit report" \
    'grep -q "<testcase classname=\"option\" name=\"rules\">" "$work/junit.xml" &&
     grep -q "<property name=\"origin\" value=\"manifest\"/>" "$work/junit.xml"'
"$CKPT_BIN" verify "$work/swapped" --against "$src" --target ascend-310p >"$work/out" 2>&1
status=$?
check "... and pinned to convert's command line, it fails (exit $status) naming the rules" \
    '[ $status = 1 ] && grep -q "^FAIL option     rules = none (default): option rules: proving with none, but the manifest records $q rename=$o" "$work/out"'
"$CKPT_BIN" verify "$work/swapped" --against "$src" --target ascend-310p --rules "$work/swap.rules" >/dev/null 2>&1
status=$?
check "... and passes with the same rules given (exit $status)" '[ $status = 0 ]'
case_ "nz recorded as all, the bytes left ND" 0 1 1 set-option nz '"all"'
case_ "max_shard_bytes recorded otherwise" 0 1 1 set-option max_shard_bytes 1000
case_ "an unknown target" 0 3 1 set-top target '"ascend-999"'
"$CKPT_BIN" convert "$src" "$work/pinned" --target ascend-310p --nz all --quiet >/dev/null
"$CKPT_BIN" verify "$work/pinned" --against "$src" --target ascend-310p --nz all >/dev/null 2>&1
status=$?
check "an honest NZ folder proves with its command line (exit $status)" '[ $status = 0 ]'
"$CKPT_BIN" verify "$work/pinned" --against "$src" --target ascend-310p >"$work/out" 2>&1
status=$?
check "... and not with another one (exit $status)" '[ $status = 1 ] && grep -q "^FAIL option     nz = auto (default)" "$work/out"'
"$CKPT_BIN" verify "$work/pinned" --target ascend-310p >/dev/null 2>&1
status=$?
check "conversion options without --against are a usage error (exit $status)" '[ $status = 2 ]'
"$CKPT_BIN" verify "$work/pinned" --against "$src" --nz all >/dev/null 2>&1
status=$?
check "... and without --target too, as for convert (exit $status)" '[ $status = 2 ]'

# class 2: side files compared with what convert writes from SRC
case_ "config.json with an auto_map and another head count" 0 1 1 edit-config
case_ "an extra modeling_evil.py, listed in the manifest" 0 1 1 add-file modeling_evil.py
case_ "generation_config.json removed, and from the manifest" 0 1 1 remove-file generation_config.json

# class 3: duplicate manifest entries, extra and missing tensors
case_ "a tensor appended to a shard and the index, an existing entry listed twice" 3 3 3 \
    append-tensor extra.weight twice
case_ "a tensor appended to a shard and the index, not in the manifest" 1 1 1 append-tensor extra.weight
case_ "a tensor appended to a shard, the index and the manifest" 0 1 1 append-tensor extra.weight listed
case_ "a tensor removed from its shard, the index and the manifest" 0 1 1 drop-tensor model.norm.weight
case_ "the index maps one more tensor" 1 1 1 edit-index

# class 4: shards a source reader refuses
case_ "bytes after the data buffer" 1 1 1 trailing-bytes
case_ "a data_offsets span wider than shape x dtype" 1 1 1 wide-span

# class 7: manifest fields validated before use
case_ "nbytes that is not shape x dtype" 3 3 3 set-tensor-field 1 nbytes 4
case_ "a shape whose product overflows 64 bits" 3 3 3 set-tensor-field 0 shape '[4294967296, 4294967296, 16]'
case_ "an ND tensor whose nd_shape is not its shape" 3 3 3 set-tensor-field 1 nd_shape '[32, 2]'
case_ "an unknown source.dtype" 3 3 3 set-tensor-field 1 source.dtype '"BOOLX"'
case_ "another source.dtype" 0 1 1 set-tensor-field 1 source.dtype '"F32"'
case_ "another source.name" 0 1 1 set-tensor-field 1 source.name '"model.norm.weight"'
case_ "an alias of no stored tensor" 3 3 3 set-tensor-field 1 alias_of '"no.such.tensor"'
case_ "an offset near 2^63" 1 1 1 set-tensor-field 1 offset 9223372036854775000
case_ "an offset past 2^63 - nbytes" 3 3 3 set-tensor-field 1 offset 9223372036854775800

# a bundle holds a source, not a conversion: conversion options make no sense against one
"$CKPT_BIN" pack "$src" "$work/s.ckb" --quiet >/dev/null 2>&1
"$CKPT_BIN" verify "$work/s.ckb" --against "$src" --target ascend-310p >/dev/null 2>&1
status=$?
check "verify BUNDLE --against SRC with conversion options is a usage error (exit $status)" '[ $status = 2 ]'
case_ "options.fp8_block recorded otherwise" 0 1 1 set-option fp8_block '[64, 64]'

# --deepspeed-weights decides the tensors of a DeepSpeed source: pinned like the conversion options
ds="$CKPT_TESTDATA/deepspeed/zero2"
"$CKPT_BIN" convert "$ds" "$work/ds" --target nd --deepspeed-weights module --quiet >/dev/null 2>&1
"$CKPT_BIN" verify "$work/ds" --against "$ds" --target nd --deepspeed-weights module >"$work/out" 2>&1
status=$?
check "a DeepSpeed folder proves with its --deepspeed-weights (exit $status), named as the command line's" \
    '[ $status = 0 ] && grep -q "^ok   option     deepspeed_weights = module (command line)$" "$work/out"'
"$CKPT_BIN" verify "$work/ds" --against "$ds" --target nd >"$work/out" 2>&1
status=$?
check "... and fails without it (exit $status)" \
    '[ $status = 1 ] && grep -q "^FAIL option     deepspeed_weights = fp32 (default)" "$work/out"'
"$CKPT_BIN" verify "$work/ds" --against "$ds" >"$work/out" 2>&1
status=$?
check "... and proves with the manifest's (exit $status), saying so" \
    '[ $status = 0 ] && grep -q "^ok   option     deepspeed_weights = module (manifest)$" "$work/out"'
