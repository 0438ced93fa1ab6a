#!/bin/sh
# embed.sh: installs libckpt into a temporary prefix and builds examples/embed.c
# against it as a program that links the library would: through pkg-config (shared,
# and static with --static alone to name what libckpt.a needs) and through the CMake package.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

prefix=$(mktemp -d)
static=$(mktemp -d)
trap 'rm -rf "$prefix" "$static"' EXIT
san=""
[ "${SANITIZE:-}" = 1 ] && san="-fsanitize=address,undefined"

check "make install into a temporary prefix" \
    '${MAKE:-make} -s install PREFIX="$prefix" BUILD="$CKPT_BUILD" SANITIZE="${SANITIZE:-}" >/dev/null'
check "installed files" \
    'test -f "$prefix/include/ckpt.h" && test -f "$prefix/lib/libckpt.a" && test -x "$prefix/bin/ckpt" &&
     test -L "$prefix/lib/libckpt.so" && test -f "$prefix/lib/pkgconfig/libckpt.pc" &&
     test -f "$prefix/lib/cmake/libckpt/libckptConfig.cmake" &&
     test -f "$prefix/lib/cmake/libckpt/libckptConfigVersion.cmake" &&
     test -f "$prefix/share/man/man1/ckpt.1" && test -f "$prefix/share/bash-completion/completions/ckpt"'
check "libckpt.pc and the man page are found where users look" \
    '[ "$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion libckpt)" = "$("$prefix/bin/ckpt" --version | cut -d" " -f2)" ] &&
     [ "$(MANPATH="$prefix/share/man" man -w ckpt)" = "$prefix/share/man/man1/ckpt.1" ]'
check "libckpt.pc passes pkg-config --validate" \
    'PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --validate libckpt'
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

# a prefix with libckpt.a only, so that the linker cannot fall back on the shared library
check "make install into a second prefix, shared library removed" \
    '${MAKE:-make} -s install PREFIX="$static" BUILD="$CKPT_BUILD" SANITIZE="${SANITIZE:-}" >/dev/null &&
     rm "$static"/lib/libckpt.so*'
check "embed.c links libckpt.a with pkg-config --static and runs" \
    'cc -std=c11 -Wall -Wextra -Werror $san examples/embed.c -o "$static/embed" \
        $(PKG_CONFIG_PATH="$static/lib/pkgconfig" pkg-config --static --cflags --libs libckpt) &&
     ! ldd "$static/embed" | grep -q libckpt &&
     "$static/embed" testdata/sample | head -n 1 | grep -q "safetensors, 21 tensors"'
# -static needs every library's archive (libarchive's .pc names acl, lz4, ...); sanitizers cannot link so
if [ -n "$san" ]; then
    n=$((n + 1)); echo "ok $n - embed.c links fully static # SKIP sanitizers do not link -static"
else
    check "embed.c links fully static (-static) with pkg-config --static and runs" \
        'cc -static -std=c11 -Wall -Wextra -Werror examples/embed.c -o "$static/embed-full" \
            $(PKG_CONFIG_PATH="$static/lib/pkgconfig" pkg-config --static --cflags --libs libckpt) 2>"$static/ld.log" &&
         ! ldd "$static/embed-full" >/dev/null 2>&1 &&
         "$static/embed-full" testdata/sample | head -n 1 | grep -q "safetensors, 21 tensors"'
fi

# the CMake package: examples/CMakeLists.txt builds embed (shared) and embed_static
check "embed.c builds with CMake through find_package(libckpt 0.1)" \
    'cmake -S examples -B "$prefix/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$san" \
        -DCMAKE_EXE_LINKER_FLAGS="$san" >"$prefix/cmake.log" 2>&1 &&
     cmake --build "$prefix/cmake-build" >>"$prefix/cmake.log" 2>&1 || { cat "$prefix/cmake.log"; false; }'
check "the CMake-built embed links the installed shared library and lists the sample" \
    'ldd "$prefix/cmake-build/embed" | grep -q "libckpt.so.0 => $prefix/lib" &&
     "$prefix/cmake-build/embed" testdata/sample | head -n 1 | grep -q "safetensors, 21 tensors"'
check "the CMake-built embed_static holds libckpt and lists the sample" \
    '! ldd "$prefix/cmake-build/embed_static" | grep -q libckpt &&
     "$prefix/cmake-build/embed_static" testdata/sample | head -n 1 | grep -q "safetensors, 21 tensors"'
# a staged copy (DESTDIR) moved away from the prefix it was built for: the package finds itself
check "the CMake package works from a DESTDIR copy, away from its PREFIX" \
    '${MAKE:-make} -s install DESTDIR="$static/stage" PREFIX=/opt/libckpt BUILD="$CKPT_BUILD" SANITIZE="${SANITIZE:-}" >/dev/null &&
     cmake -S examples -B "$static/cmake-build" -DCMAKE_PREFIX_PATH="$static/stage/opt/libckpt" -DCMAKE_C_FLAGS="$san" \
        -DCMAKE_EXE_LINKER_FLAGS="$san" >"$static/cmake.log" 2>&1 &&
     cmake --build "$static/cmake-build" >>"$static/cmake.log" 2>&1 &&
     "$static/cmake-build/embed" testdata/sample | head -n 1 | grep -q "safetensors, 21 tensors" ||
     { cat "$static/cmake.log"; false; }'
check "the CMake package refuses a request for another minor version before 1.0" \
    'mkdir -p "$prefix/cmake-v" && printf "cmake_minimum_required(VERSION 3.13)\nproject(v C)\nfind_package(libckpt 0.99 REQUIRED)\n" \
        >"$prefix/cmake-v/CMakeLists.txt" &&
     ! cmake -S "$prefix/cmake-v" -B "$prefix/cmake-v/b" -DCMAKE_PREFIX_PATH="$prefix" >"$prefix/cmake-v.log" 2>&1 &&
     grep -q "0.1.0" "$prefix/cmake-v.log"'
check "make uninstall removes every file make install wrote" \
    '${MAKE:-make} -s uninstall PREFIX="$static" >/dev/null && rm -f "$static/embed" "$static/embed-full" "$static/ld.log" &&
     left=$(find "$static" \( -path "$static/stage" -o -path "$static/cmake-build" \) -prune -o \
         ! -type d ! -name cmake.log -print) && [ -z "$left" ] || { echo "# left: $left"; false; }'
