#!/bin/sh
# external.sh: without the third-party test files, make check stops before building or
# running anything, with a message that names the folder, says what it is and where it goes.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
missing=/nonexistent/shared/external
for goal in check check-asan; do
    ${MAKE:-make} --no-print-directory "$goal" EXTERNAL="$missing" BUILD="$CKPT_BUILD/no-external" >"$out" 2>&1
    status=$?
    check "make $goal without the external files fails" '[ $status -ne 0 ]'
    check "make $goal names the missing folder, what it holds and where it belongs" \
        'grep -q "$missing is missing" "$out" && grep -q "third-party\|other projects wrote" "$out" &&
         grep -q "\.\./shared/external beside the project checkout" "$out" && grep -q "EXTERNAL=DIR" "$out"'
    check "make $goal stops before compiling or running a test" \
        '! grep -q "passed\|^cc \|-c .*\.c" "$out" && ! test -e "$CKPT_BUILD/no-external"'
done
