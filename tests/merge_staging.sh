#!/bin/sh
# merge_staging.sh: `manifest merge` trusts nothing in DST.ckpt-parts that another user could have
# placed or changed (issue 17, classes 5 and 6).  Each tampered staging folder is made here from an
# honest 4-part conversion; merge must refuse it with exit 3, one line naming the problem and the
# path, and leave no DST.  As root (CI), the folders and shards handed to another user are made with
# chown; otherwise those checks are skipped (reported as passing, with a note).
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
opts="--target ascend-310p --max-shard-size 20KB --quiet"
cp -r "$CKPT_TESTDATA/sample" "$t/src"
other=65534   # nobody

staged() {   # a fresh 4-part staging folder for DST $1 (parts one after the other: small)
    rm -rf "$1" "$1.ckpt-parts"
    for k in 1 2 3 4; do "$CKPT_BIN" convert "$t/src" "$1" $opts --part "$k/4" >/dev/null 2>&1; done
}
refuses() {   # DST MESSAGE
    "$CKPT_BIN" manifest merge "$1" >/dev/null 2>"$t/err"
    status=$?
    [ "$status" -eq 3 ] && [ "$(wc -l <"$t/err")" -eq 1 ] && grep -qF -- "$2" "$t/err" && ! test -e "$1" ||
        { echo "# exit $status: $(cat "$t/err")"; return 1; }
}
root() { [ "$(id -u)" -eq 0 ] || { echo "# not root: skipped"; return 0; }; "$@"; }

staged "$t/a"
check "an honest staging folder merges" '"$CKPT_BIN" manifest merge "$t/a" >/dev/null && "$CKPT_BIN" verify "$t/a" >/dev/null'

# class 5: a staging folder others may write, or another user's
staged "$t/b"
chmod o+w "$t/b.ckpt-parts"
check "a world-writable staging folder is refused" 'refuses "$t/b" "$t/b.ckpt-parts: writable by its group or others"'
chmod o-w,g+w "$t/b.ckpt-parts"
check "a group-writable staging folder is refused" 'refuses "$t/b" "$t/b.ckpt-parts: writable by its group or others"'
chmod g-w "$t/b.ckpt-parts/part-2-of-4" "$t/b.ckpt-parts" && chmod o+w "$t/b.ckpt-parts/part-2-of-4"
check "a world-writable part folder is refused" 'refuses "$t/b" "$t/b.ckpt-parts/part-2-of-4: writable"'
chmod o-w "$t/b.ckpt-parts/part-2-of-4"
check "another user's staging folder is refused" \
    'root sh -c "chown $other \"$t/b.ckpt-parts\"" && { [ "$(id -u)" -ne 0 ] || refuses "$t/b" "$t/b.ckpt-parts: owned by another user (uid $other)"; }'
mkdir -p "$t/c.ckpt-parts" && chmod 777 "$t/c.ckpt-parts"
"$CKPT_BIN" convert "$t/src" "$t/c" $opts --part 1/4 >/dev/null 2>"$t/err"
status=$?
check "a part refuses a staging folder others may write (got $status)" \
    '[ "$status" -eq 3 ] && grep -q "$t/c.ckpt-parts: writable by its group or others" "$t/err" && ! test -e "$t/c.ckpt-parts/part-1-of-4"'

# class 5: a finished part's shard changed after its record was written, or not the user's own
staged "$t/d"
shard=$(ls "$t/d.ckpt-parts/part-3-of-4/"*.safetensors | head -n 1)
size=$(wc -c <"$shard")
printf '\001' | dd of="$shard" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
check "a shard whose bytes are not its record's is refused (re-hashed)" \
    'refuses "$t/d" "$shard: its bytes are not those its part recorded"'
staged "$t/e"
shard=$(ls "$t/e.ckpt-parts/part-1-of-4/"*.safetensors | head -n 1)
check "a shard owned by another user is not linked into DST" \
    'root sh -c "chown $other \"$shard\"" && { [ "$(id -u)" -ne 0 ] || refuses "$t/e" "$shard: owned by another user (uid $other); refusing to link it"; }'
staged "$t/f"
shard=$(ls "$t/f.ckpt-parts/part-1-of-4/"*.safetensors | head -n 1)
cp "$shard" "$t/foreign" && rm "$shard" && ln "$t/foreign" "$shard"
check "a hard link to another user's file is not linked into DST" \
    'root sh -c "chown $other \"$t/foreign\"" && { [ "$(id -u)" -ne 0 ] || refuses "$t/f" "owned by another user"; }'
staged "$t/g"
shard=$(ls "$t/g.ckpt-parts/part-4-of-4/"*.safetensors | head -n 1)
mv "$shard" "$t/moved" && ln -s "$t/moved" "$shard"
check "a shard that is a symbolic link is refused" 'refuses "$t/g" "$shard: missing, or not a plain file"'

# class 6: parts made from sources with the same names and sizes but other contents
rm -rf "$t/h" "$t/h.ckpt-parts"
for k in 1 2; do "$CKPT_BIN" convert "$t/src" "$t/h" $opts --part "$k/4" >/dev/null 2>&1; done
for f in "$t"/src/*.safetensors; do   # another last byte of tensor data in every file
    size=$(wc -c <"$f")
    printf '\177' | dd of="$f" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
done
for k in 3 4; do "$CKPT_BIN" convert "$t/src" "$t/h" $opts --part "$k/4" >/dev/null 2>&1; done
check "parts made from different sources are refused" 'refuses "$t/h" "were made from different sources"'
# class 6 again: every part from one source, which then changed before the merge (parts that read disjoint
# files can only be held to SRC as it is: merge hashes it once more, as the manifest records it)
cp -r "$CKPT_TESTDATA/sample" "$t/src2"
rm -rf "$t/i" "$t/i.ckpt-parts"
for k in 1 2 3 4; do "$CKPT_BIN" convert "$t/src2" "$t/i" $opts --part "$k/4" >/dev/null 2>&1; done
f="$t/src2/model-00001-of-00002.safetensors"
size=$(wc -c <"$f")
printf '\177' | dd of="$f" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
check "parts made from bytes SRC no longer holds are refused" \
    'refuses "$t/i" "read other bytes of $f than it holds now"'

# pack --merge (libckpt/pack/pack_merge.c) shares no staging folder, but the merged index names the
# parts' volumes where they lie: each part index and volume must be the running user's alone
packed() { rm -f "$t"/p.ckb*; for k in 1 2; do "$CKPT_BIN" pack "$CKPT_TESTDATA/sample" "$t/p.ckb" --part "$k/2" --quiet >/dev/null 2>&1; done; }
packrefuses() {   # MESSAGE
    "$CKPT_BIN" pack --merge "$t/p.ckb" >/dev/null 2>"$t/err"
    status=$?
    [ "$status" -eq 3 ] && grep -qF -- "$1" "$t/err" && ! test -e "$t/p.ckb" || { echo "# exit $status: $(cat "$t/err")"; return 1; }
}
packed
chmod o+w "$t/p.ckb.part-2-of-2"
check "pack --merge refuses a world-writable part index" 'packrefuses "$t/p.ckb.part-2-of-2: writable by its group or others"'
packed
chmod g+w "$t/p.ckb.part-1-of-2.001"
check "pack --merge refuses a group-writable volume, leaving no bundle" 'packrefuses "$t/p.ckb.part-1-of-2.001: writable"'
packed
check "pack --merge refuses another user's volume" \
    'root sh -c "chown $other \"$t/p.ckb.part-2-of-2.001\"" && { [ "$(id -u)" -ne 0 ] || packrefuses "owned by another user (uid $other)"; }'
packed
check "pack --merge of the user's own parts still joins them" \
    '"$CKPT_BIN" pack --merge "$t/p.ckb" >/dev/null 2>&1 && "$CKPT_BIN" verify "$t/p.ckb" >/dev/null 2>&1'
