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

# case NAME VERIFY AGAINST OP [ARG...]: the exit statuses of verify and verify --against
case_() {
    name=$1 want_verify=$2 want_against=$3
    shift 3
    rm -rf "$work/t"
    cp -r "$work/honest" "$work/t"
    python3 "$tamper" "$work/t" "$@" || echo "# tamper.py $* failed"
    "$CKPT_BIN" verify "$work/t" >"$work/out" 2>&1
    got_verify=$?
    "$CKPT_BIN" verify "$work/t" --against "$src" >>"$work/out" 2>&1
    got_against=$?
    check "$name: verify exits $want_verify, --against $want_against (got $got_verify, $got_against)" \
        '[ "$got_verify" = "$want_verify" ] && [ "$got_against" = "$want_against" ]'
    [ "$got_verify" = "$want_verify" ] && [ "$got_against" = "$want_against" ] || sed 's/^/# /' "$work/out"
}

"$CKPT_BIN" verify "$work/honest" --against "$src" >/dev/null 2>&1
check "the honest folder verifies" '[ $? = 0 ]'

# class 3: duplicate manifest entries, extra and missing tensors
case_ "a tensor appended to a shard and the index, an existing entry listed twice" 3 3 \
    append-tensor extra.weight twice
case_ "a tensor appended to a shard and the index, not in the manifest" 1 1 append-tensor extra.weight
case_ "a tensor appended to a shard, the index and the manifest" 0 1 append-tensor extra.weight listed
case_ "a tensor removed from its shard, the index and the manifest" 0 1 drop-tensor model.norm.weight
case_ "the index maps one more tensor" 1 1 edit-index

# class 4: shards a source reader refuses
case_ "bytes after the data buffer" 1 1 trailing-bytes
case_ "a data_offsets span wider than shape x dtype" 1 1 wide-span

# class 7: manifest fields validated before use
case_ "nbytes that is not shape x dtype" 3 3 set-tensor-field 1 nbytes 4
case_ "a shape whose product overflows 64 bits" 3 3 set-tensor-field 0 shape '[4294967296, 4294967296, 16]'
case_ "an ND tensor whose nd_shape is not its shape" 3 3 set-tensor-field 1 nd_shape '[32, 2]'
case_ "a source.dtype with no byte size" 3 3 set-tensor-field 1 source.dtype '"BOOLX"'
case_ "an alias of no stored tensor" 3 3 set-tensor-field 1 alias_of '"no.such.tensor"'
