#!/bin/sh
# report_paths.sh: where `--junit FILE` writes (issue 17, class 10).  "-" is standard output; a path
# that is not a regular file (a device, a FIFO, a link to one) is written in place and stays what it
# was; a regular file is replaced whole (a new inode renamed over it, no temporary left); a link to a
# regular file stays a link.  When verify or diff cannot run (exit 3), --json and --junit still
# report it: one failing check "error" naming the problem.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
"$CKPT_BIN" convert "$CKPT_TESTDATA/sample" dst --target nd --quiet >/dev/null 2>&1 || echo "not ok 0 - convert"

"$CKPT_BIN" verify dst --junit - >out 2>/dev/null
check "--junit - writes the XML alone to standard output" 'xmllint --noout out && grep -q "<testsuites>" out && [ ! -e ./- ]'
"$CKPT_BIN" verify dst --junit - --json >/dev/null 2>&1
status=$?
check "--junit - with --json is a usage error (got $status)" '[ "$status" -eq 2 ]'

"$CKPT_BIN" verify dst --junit /dev/null >/dev/null 2>&1
status=$?
ln -s /dev/null to-null
"$CKPT_BIN" verify dst --junit to-null >/dev/null 2>&1
check "--junit /dev/null, and a link to it, leave the device and the link as they were (got $status)" \
    '[ "$status" -eq 0 ] && [ -c /dev/null ] && [ -L to-null ] && [ "$(readlink to-null)" = /dev/null ]'

mkfifo fifo
cat fifo >from-fifo &
reader=$!
"$CKPT_BIN" verify dst --junit fifo >/dev/null 2>&1
status=$?
wait "$reader"
check "--junit FIFO writes into the FIFO, which stays one (got $status)" \
    '[ "$status" -eq 0 ] && [ -p fifo ] && grep -q "</testsuites>" from-fifo'

echo old >report.xml
ln report.xml old-link
before=$(ls -i report.xml | cut -d" " -f1)
"$CKPT_BIN" verify dst --junit report.xml >/dev/null 2>&1
check "a regular report file is replaced by a new one, not written into" \
    '[ "$(ls -i report.xml | cut -d" " -f1)" != "$before" ] && grep -q "<testsuites>" report.xml && [ "$(cat old-link)" = old ]'
check "no temporary is left beside it" '[ -z "$(ls -A | grep "^\.")" ]'
ln -s report.xml to-report
"$CKPT_BIN" verify dst --junit to-report >/dev/null 2>&1
check "a link to a regular report stays a link; its target is replaced" \
    '[ -L to-report ] && grep -q "<testsuites>" report.xml'
mkdir folder
"$CKPT_BIN" verify dst --junit folder >/dev/null 2>&1
status=$?
check "a folder as the report is an output error (got $status)" '[ "$status" -eq 4 ] && [ -d folder ]'

# cannot run: no manifest; a source refused (an expansion bomb)
"$CKPT_BIN" verify missing --json --junit cannot.xml >cannot.json 2>err
status=$?
check "verify of a folder without manifest exits 3 (got $status)" '[ "$status" -eq 3 ]'
check "its JSON reports the failure" \
    'python3 -c "import json,sys; d=json.load(open(\"cannot.json\")); f=d[\"findings\"][-1]; sys.exit(not (d[\"ok\"] is False and f[\"check\"] == \"error\" and \"no manifest\" in f[\"message\"]))"'
check "its JUnit holds one failing test case naming the problem" \
    '[ "$(grep -c "<failure" cannot.xml)" -eq 1 ] && grep -q "classname=\"error\"" cannot.xml && grep -q "no manifest" cannot.xml'
"$CKPT_BIN" diff "$CKPT_TESTDATA/hostile/expansion-bomb.pt" dst --json --junit diff.xml >diff.json 2>err
status=$?
check "diff of a refused source exits 3 (got $status)" '[ "$status" -eq 3 ]'
check "and still writes its JSON and JUnit" \
    'grep -q "\"check\": \"error\"" diff.json && grep -q "max_expansion" diff.json && grep -q "<failure message=.*max_expansion" diff.xml'
"$CKPT_BIN" manifest create "$CKPT_TESTDATA/sample" -o /dev/null --quiet >/dev/null 2>&1
status=$?
echo old >m.json
ln m.json m-old
"$CKPT_BIN" manifest create "$CKPT_TESTDATA/sample" -o m.json --quiet >/dev/null 2>&1
check "manifest create -o follows the same rules: /dev/null stays a device, a file is replaced whole (got $status)" \
    '[ "$status" -eq 0 ] && [ -c /dev/null ] && grep -q manifest_version m.json && [ "$(cat m-old)" = old ]'
check "which xmllint reads" 'xmllint --noout cannot.xml diff.xml report.xml'
