#!/bin/sh
# library_messages.sh: the library names no flag of the ckpt command (ckpt.h: the CLI adds its
# own hints), so that a program or the Python binding calling it never reads "use --force".
# The flags are taken from the CLI's getopt tables; Megatron's and others' flags may be named.
set -u
cd "$(dirname "$0")/.."
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
flags=$(grep -ho '{"[a-z][a-z0-9-]*", *\(no\|required\|optional\)_argument' cli/*.c cli/*.h |
        sed 's/{"\([^"]*\)".*/\1/' | sort -u)
check "the CLI's flags are found" '[ "$(echo "$flags" | wc -l)" -gt 20 ]'
found=""
for f in $flags; do
    # string literals only: lines with a quote before the flag, comments aside
    hits=$(grep -rn --include='*.c' -e "\"[^\"]*--$f\\b" libckpt formats | grep -v ':[0-9]*: *\(/\*\|\*\|//\)')
    [ -n "$hits" ] && found="$found
$hits"
done
check "no library message names a ckpt flag" '[ -z "$found" ] || { echo "$found"; false; }'
