#!/bin/sh
# embed.sh: installs libckpt into a temporary prefix and builds examples/embed.c
# against it through pkg-config, as a program that links the library would.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
san=""
[ "${SANITIZE:-}" = 1 ] && san="-fsanitize=address,undefined"

check "make install into a temporary prefix" \
    '${MAKE:-make} -s install PREFIX="$prefix" BUILD="$CKPT_BUILD" SANITIZE="${SANITIZE:-}" >/dev/null'
check "installed files" \
    'test -f "$prefix/include/ckpt.h" && test -f "$prefix/lib/libckpt.a" && test -x "$prefix/bin/ckpt" &&
     test -L "$prefix/lib/libckpt.so" && test -f "$prefix/lib/pkgconfig/libckpt.pc"'
check "shared library soname is libckpt.so.0" \
    'readelf -d "$prefix/lib/libckpt.so" | grep -q "SONAME.*\[libckpt.so.0\]"'
check "shared library exports only ckpt_ symbols" \
    '! nm -D --defined-only "$prefix/lib/libckpt.so" | awk "\$2 == \"T\" {print \$3}" | grep -v "^ckpt_"'
check "embed.c builds with pkg-config" \
    'cc -std=c11 -Wall -Wextra -Werror $san examples/embed.c -o "$prefix/embed" \
        $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs libckpt)'
check "embed links the shared library" \
    'LD_LIBRARY_PATH="$prefix/lib" ldd "$prefix/embed" | grep -q "libckpt.so.0 => $prefix/lib"'
check "embed lists the sample's 21 tensors" \
    'out=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/embed" testdata/sample) &&
     echo "$out" | head -n 1 | grep -q "safetensors, 21 tensors" &&
     echo "$out" | grep -q "^lm_head.weight BF16 \[317, 64\] "'
check "embed reports a bad file" \
    'LD_LIBRARY_PATH="$prefix/lib" "$prefix/embed" "$CKPT_EXTERNAL/safetensors-cpp/safetensors_abuse_attempt_1.safetensors" 2>/dev/null; test $? -eq 3'
