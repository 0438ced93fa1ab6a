#!/bin/bash
# hostile.sh: every input that must be refused is refused with exit 3 within 10 s and (outside
# the sanitizer build, whose shadow memory needs a huge address space) 256 MiB of address space;
# and a conversion that runs out of space exits 4 and leaves no destination behind.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

limits='ulimit -t 10'
[ "${SANITIZE:-}" = 1 ] || limits="$limits; ulimit -v 262144"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pickle bombs and hostile archives made here, beside the external samples
printf '\200\002' > "$work/deep.pkl"
head -c 200000 /dev/zero | tr '\0' '(' >> "$work/deep.pkl"
printf 'N.' >> "$work/deep.pkl"
python_free_bomb() {   # x = (x, x) forty times over, memoized: 2^40 paths in 200 bytes
    printf '\200\002N'
    for i in $(seq 0 39); do printf "q\\$(printf '%03o' "$i")h\\$(printf '%03o' "$i")\206"; done
    printf '.'
}
python_free_bomb > "$work/bomb.pkl"
printf '\377\377\377\377\377\377\377\177{}' > "$work/huge-header.safetensors"
printf '\200\002Nr\377\377\377\377.' > "$work/huge-memo.pkl"   # LONG_BINPUT at key 2^32 - 1
head -c 64 /dev/urandom > "$work/random.pt"
# EXT4 (opcode 0x84, CPython Lib/pickle.py: EXT4 = b'\x84'), then EXT1 and EXT2: each refused under its own name
printf '\200\002\204\001\000\000\000.' > "$work/ext4.pkl"
printf '\200\002\202\001.' > "$work/ext1.pkl"
printf '\200\002\203\001\000.' > "$work/ext2.pkl"

refused=0
for f in "$CKPT_EXTERNAL"/picklescan/data/* "$CKPT_EXTERNAL"/picklescan/data2/* "$CKPT_EXTERNAL"/burn/broken.pt \
         "$CKPT_EXTERNAL"/burn/*.tar "$CKPT_EXTERNAL"/safetensors-cpp/safetensors_abuse_attempt_1.safetensors "$work"/* \
         "$CKPT_TESTDATA"/hostile/* "$CKPT_TESTDATA"/archive/hostile/*; do
    case "$f" in */pytorch_model.bin | */new_pytorch_model.bin | *.py) continue ;; esac
    (cd "$work" && eval "$limits" && exec "$CKPT_BIN" inspect "$f") >/dev/null 2>"$work/err"
    status=$?
    if [ "$status" -ne 3 ]; then
        echo "# $f: exit $status: $(cat "$work/err")"
        refused=-1000
    fi
    refused=$((refused + 1))
done
check "every hostile input ($refused) refused with exit 3 under the caps" '[ "$refused" -ge 110 ]'
for k in 1 2 4; do
    "$CKPT_BIN" inspect "$work/ext$k.pkl" >/dev/null 2>"$work/err"
    check "opcode EXT$k is refused as EXT$k" 'grep -q "extension codes (EXT$k)" "$work/err"'
done
check "nothing was created while refusing" '[ -z "$(ls -A "$work" | grep -v -e "\.pkl$" -e "\.pt$" -e "\.safetensors$" -e "^err$")" ]'

# testdata/hostile (made by its make_hostile.py): impossible views, zip bombs, zips lying about sizes or
# places, index files naming shards outside their folder; testdata/archive/hostile (made by
# ../make_fixtures.py): archives whose members escape, link, repeat, lie about their size or inflate
# like a bomb.  Each refused by convert too, with a message naming the problem and nothing written: no
# DST, nothing new beside it, in the hostile folders or in TMPDIR
expect_message() {
    case "$1" in
    *absolute.tar) echo "member /tmp/escape.safetensors has an absolute path" ;;
    *traversal.tar) echo "member ../escape.safetensors climbs out of the archive" ;;
    *symlink.tar) echo "member model.safetensors is a symbolic link" ;;
    *hardlink.tar) echo "member model.safetensors is a hard link" ;;
    *fifo.tar) echo "member model.safetensors is not a regular file or folder" ;;
    *duplicate.tar) echo "member model_config.yaml appears twice" ;;
    *lying-size.tar) echo "member model.safetensors claims 1048576 bytes, past the end of the archive" ;;
    *bomb.tar.zst) echo "member model.safetensors inflates over 200 times" ;;
    *storage-smaller-than-view.pt) echo "reads 32 bytes of a 16-byte storage" ;;
    *shape-overflows-64-bits.pt) echo "shape overflows 64 bits" ;;
    *negative-stride.pt) echo "stride is malformed" ;;
    *zip64-lying-sizes.pt) echo "data lies outside the file" ;;
    *zip-bomb-declared.pt) echo "compressed entries inflate to more than 1073741824 bytes" ;;
    *zip-bomb-lying.pt) echo "entry archive/data/0 does not inflate to its declared 16 bytes" ;;
    *zip-bomb-overlapping.pt) echo "zip entry archive/data/0 overlaps archive/data/1" ;;
    *zip-entry-outside.pt) echo "local header lies outside the file" ;;
    *alias-bomb.pt) echo "distinct tensor (a pickle bomb?)" ;;
    *expansion-bomb.pt) echo "presents 17592186044416 bytes from a 16-byte storage, over 1024 times its size" ;;
    *expansion-bomb-16eib.pt) echo "presents 18446744073709551612 bytes from a 16-byte storage" ;;
    *nul-key.pt) echo "a key holding a NUL byte" ;;
    *index-escape-*) echo "leaves the checkpoint folder" ;;
    *bundle-bomb.ckb) echo "claim to inflate to 1073741904 bytes, over 200 times: a bomb" ;;
    *bundle-frame-outside.ckb) echo "places frame 1 (bytes 80+512 of model.safetensors, tensor w) at bytes 1099511627776+" ;;
    *bundle-lying-frame-size.ckb) echo "places frame 1 (bytes 80+512 of model.safetensors, tensor w) at bytes 284+310" ;;
    *bundle-lying-content-size.ckb) echo "its zstd frame declares 160 bytes, the plan gives it 80" ;;
    *bundle-inflating-frame.ckb) echo "its zstd frame declares no size (the plan gives it 80 bytes)" ;;
    *bundle-frames-swapped.ckb) echo "it holds other bytes than the table says (frames swapped or moved)" ;;
    *bundle-path-escape.ckb) echo "names a file ../escape.safetensors outside itself" ;;
    *bundle-volume-escape.ckb) echo "names a volume ../elsewhere outside its folder" ;;
    esac
}
hostile_state() { ls -AR "$CKPT_TESTDATA/hostile" "$CKPT_TESTDATA/archive" | md5sum; }
before=$(hostile_state)
mkdir "$work/tmp"
for f in "$CKPT_TESTDATA"/hostile/* "$CKPT_TESTDATA"/archive/hostile/*; do
    case "$f" in *.py) continue ;; esac
    (cd "$work" && eval "$limits" && TMPDIR="$work/tmp" exec "$CKPT_BIN" convert "$f" "$work/dst" --target ascend-310p \
        --quiet) >/dev/null 2>"$work/err"
    status=$?
    name=$(basename "$f")
    check "convert refuses $name with exit 3 (got $status)" '[ "$status" -eq 3 ]'
    check "convert names the problem of $name in one line" \
        'grep -qF -- "$(expect_message "$f")" "$work/err" && grep -q "$name" "$work/err" && [ "$(wc -l <"$work/err")" -eq 1 ]'
    check "convert of $name leaves no DST" '[ ! -e "$work/dst" ] && ! ls -A "$work" | grep -q "ckpt-tmp"'
done
# the expansion bombs (make_saved.py, real torch.save of stride-0 views) are refused by diff too, at once
for f in "$CKPT_TESTDATA"/hostile/expansion-bomb*.pt; do
    (cd "$work" && eval "$limits" && exec "$CKPT_BIN" diff "$f" "$f") >/dev/null 2>"$work/err"
    status=$?
    check "diff refuses $(basename "$f") with exit 3 (got $status)" \
        '[ "$status" -eq 3 ] && grep -q "raise it with --max-expansion" "$work/err"'
done
check "nothing written beside the hostile inputs" '[ "$(hostile_state)" = "$before" ]'
check "nothing left in TMPDIR" '[ -z "$(ls -A "$work/tmp")" ]'
check "no member escaped its archive" '[ ! -e "$CKPT_TESTDATA/archive/escape.safetensors" ] && [ ! -e /tmp/escape.safetensors ]'

# out of space: a 64 KiB file-size limit against a 260 KiB conversion
(ulimit -f 128; exec "$CKPT_BIN" convert "$CKPT_TESTDATA/sample" "$work/out" --target ascend-310p) >/dev/null 2>"$work/err"
status=$?
check "out of space exits 4 (got $status)" '[ "$status" -eq 4 ]'
check "out of space names the problem" 'grep -q "File too large" "$work/err"'
check "out of space leaves no destination and no temporary" '[ ! -e "$work/out" ] && ! ls -A "$work" | grep -q "ckpt-tmp"'
