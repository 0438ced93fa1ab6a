#!/bin/sh
# limits.sh: each resource-limit option changes what every command that opens a source does:
# a tight limit refuses a fixture with exit 3 and names the option, the default accepts it.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sample="$CKPT_TESTDATA/sample"        # 21 tensors of rank <= 2, index of 1726 bytes
torch="$CKPT_TESTDATA/torch/training.pt"
"$CKPT_BIN" convert "$sample" "$work/dst" --target nd --quiet >/dev/null 2>&1 ||
    echo "not ok 0 - the reference conversion failed"

# runs `ckpt COMMAND... OPTION VALUE`; expects exit 3 and the option named in the message
refuses() {
    option=$1 value=$2
    shift 2
    "$CKPT_BIN" "$@" "$option" "$value" >/dev/null 2>"$work/err"
    status=$?
    check "$* $option $value exits 3 (got $status)" '[ "$status" -eq 3 ]'
    check "$* $option $value names the option" 'grep -q -- "raise it with $option" "$work/err"'
}

for cmd in "inspect $sample" "convert $sample $work/out --target nd --quiet" \
           "verify $work/dst --against $sample" "diff $sample $work/dst"; do
    # shellcheck disable=SC2086
    refuses --max-tensors 20 $cmd
    # shellcheck disable=SC2086
    refuses --max-rank 1 $cmd
    # shellcheck disable=SC2086
    refuses --max-header-size 1000 $cmd
    # the same limits, loose enough, let the command through
    # shellcheck disable=SC2086
    "$CKPT_BIN" $cmd --max-tensors 21 --max-rank 2 --max-header-size 4KB >/dev/null 2>&1
    status=$?
    check "$cmd with limits that fit succeeds (got $status)" '[ "$status" -eq 0 ]'
    rm -rf "$work/out"
done
refuses --max-pickle-memory 1KiB inspect "$torch"
refuses --max-pickle-memory 1KiB convert "$torch" "$work/out" --target nd --quiet
refuses --max-pickle-memory 1KiB diff "$torch" "$torch"
refuses --max-archive-size 64KiB inspect "$CKPT_TESTDATA/archive/sample.tar.zst"
"$CKPT_BIN" inspect "$CKPT_TESTDATA/archive/sample.tar.zst" --max-archive-size 1MiB >/dev/null 2>&1
status=$?
check "an archive under --max-archive-size opens (got $status)" '[ "$status" -eq 0 ]'
# an expanded view (stride 0) of 16 bytes presenting 16 TiB: refused by default, opened once the factor allows it
refuses --max-expansion 1024 inspect "$CKPT_TESTDATA/hostile/expansion-bomb.pt"
"$CKPT_BIN" inspect "$CKPT_TESTDATA/hostile/expansion-bomb.pt" --max-expansion 1100000000000 >/dev/null 2>&1
status=$?
check "an expansion under --max-expansion opens (got $status)" '[ "$status" -eq 0 ]'
check "no destination left by a refused convert" '[ ! -e "$work/out" ]'

"$CKPT_BIN" inspect "$sample" --max-rank 65 >/dev/null 2>&1
status=$?
check "--max-rank over 64 is a usage error (got $status)" '[ "$status" -eq 2 ]'
"$CKPT_BIN" inspect "$sample" --max-header-size 0 >/dev/null 2>&1
status=$?
check "a zero limit is a usage error (got $status)" '[ "$status" -eq 2 ]'
"$CKPT_BIN" inspect "$sample" --max-expansion 0 >/dev/null 2>&1
status=$?
check "a zero --max-expansion is a usage error (got $status)" '[ "$status" -eq 2 ]'
for cmd in inspect convert verify diff; do
    check "ckpt $cmd --help lists the limits" \
        '"$CKPT_BIN" $cmd --help | grep -q -- --max-pickle-memory && "$CKPT_BIN" $cmd --help | grep -q -- --max-rank'
done
