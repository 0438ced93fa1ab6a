#!/bin/sh
# python.sh: the Python binding (python/): its unit tests (python/tests, against the C tests'
# fixtures and torch's goldens) on the library this build made, one TAP line a test; then
# `pip install` of the package into a fresh venv with no network and no build isolation, the
# installed copy finding the library by the dynamic loader's search; then the README's example.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

py=/usr/bin/python3
build=$(cd "${CKPT_BUILD:-build}" && pwd)
td=$(cd "${CKPT_TESTDATA:-testdata}" && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "not ok - $py has no numpy (scripts/ensure-deps.sh test installs python3-numpy)"
    exit 1
fi
# an ASan build's library loads only into a process that has the ASan runtime first
if [ "${SANITIZE:-}" = 1 ]; then
    LD_PRELOAD=$(gcc -print-file-name=libasan.so)
    ASAN_OPTIONS=detect_leaks=0   # the interpreter's own allocations are not ours to judge
    export LD_PRELOAD ASAN_OPTIONS
fi
export CKPT_TESTDATA="$td" CKPT_EXTERNAL="${CKPT_EXTERNAL:-}"

# unittest -v prints "name (module.Class.name) ... ok|FAIL|ERROR|skipped"; each becomes one line
LIBCKPT_LIBRARY="$build/libckpt.so.0" PYTHONPATH=python "$py" -m unittest discover -s python/tests -v \
    >"$t/unit" 2>&1
status=$?
sed -n 's/^\([a-z_0-9]*\) (\([A-Za-z_.0-9]*\)) \.\.\. \(.*\)$/\2|\3/p' "$t/unit" | while IFS='|' read -r name result; do
    case "$result" in
    ok) echo "ok - python: $name" ;;
    skipped*) echo "ok - python: $name # skip ${result#skipped }" ;;
    *) echo "not ok - python: $name ($result)" ;;
    esac
done
check "python -m unittest passes (the failures' tracebacks follow)" '[ "$status" -eq 0 ]'
[ "$status" -eq 0 ] || sed -n '/^=\{10,\}/,$p' "$t/unit"

# pip install ./python offline, into a venv that sees Debian's numpy and setuptools
cp -r python "$t/src"
rm -rf "$t/src/build" "$t/src/libckpt.egg-info"
check "pip install ./python works offline (no index, no build isolation)" \
    '"$py" -m venv --system-site-packages "$t/venv" >"$t/log" 2>&1 &&
     "$t/venv/bin/pip" install --no-index --no-build-isolation --no-cache-dir --quiet "$t/src" >>"$t/log" 2>&1 ||
     { cat "$t/log"; false; }'
check "the installed package finds the library through the dynamic loader (LD_LIBRARY_PATH)" \
    '(cd "$t" && LD_LIBRARY_PATH="$build" "$t/venv/bin/python" -c "import libckpt, sys
assert libckpt.__file__.startswith(sys.prefix), libckpt.__file__
print(libckpt.library_path)") >"$t/found" 2>&1 && grep -q "libckpt.so" "$t/found"'
check "without a library it says how to give one" \
    '(cd "$t" && LIBCKPT_LIBRARY="$t/none.so" "$t/venv/bin/python" -c "import libckpt" 2>&1) | grep -q "Set LIBCKPT_LIBRARY"'

# the README's notebook example, as written (its /tmp/out moved into this test's folder)
sed -n '/^## Python/,/^## /p' README.md | sed -n '/^```python$/,/^```$/p' | sed '1d;$d' >"$t/example.py"
sed -i "s|/tmp/out|$t/out|g; s|testdata/sample|$td/sample|g" "$t/example.py"
check "the README's Python example is five lines" '[ "$(wc -l <"$t/example.py")" -eq 5 ]'
printf 'assert _ is True\n' >>"$t/example.py"
check "... and runs in the installed package: reads, converts, verifies" \
    '(cd "$t" && LD_LIBRARY_PATH="$build" "$t/venv/bin/python" -c "
import code, sys
c = code.InteractiveInterpreter()
for line in open(sys.argv[1]):
    exec(compile(line, \"example\", \"single\"), c.locals)   # a notebook cell shows its last value
" "$t/example.py") >"$t/ran" 2>&1 && [ -f "$t/out/ckpt-manifest.json" ] || { cat "$t/ran"; false; }'
