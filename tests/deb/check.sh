#!/bin/sh
# deb/check.sh: the packages `make deb` built (CKPT_DEB_DIR, version CKPT_VERSION), unpacked
# into a temporary root with dpkg -x (nothing is installed on this machine): each package holds
# what it should, the program runs, and embed.c builds against libckpt-dev with pkg-config and
# with CMake.  Run by `make check-deb`, not by make check (it needs a full package build).
set -u
n=0
failed=0
check() {
    n=$((n + 1))
    if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; failed=$((failed + 1)); fi
}

d=$CKPT_DEB_DIR
v=$CKPT_VERSION
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
lib=$root/usr/lib/$multiarch

for p in libckpt0 libckpt-dev ckpt; do
    check "$p ${v} was built" 'test -f "$d/${p}_${v}_$arch.deb"'
    dpkg -x "$d/${p}_${v}_$arch.deb" "$root" 2>/dev/null
done
contents() { dpkg-deb -c "$d/${1}_${v}_$arch.deb" | awk '{print $6}' | sed 's|^\./|/|'; }

check "libckpt0 holds the shared library, named by its soname, and nothing to build with" \
    'contents libckpt0 | grep -qx "/usr/lib/$multiarch/libckpt.so.$v" &&
     readelf -d "$lib/libckpt.so.0" | grep -q "SONAME.*\[libckpt.so.0\]" &&
     ! contents libckpt0 | grep -q "\.h$\|\.a$\|\.pc$\|/usr/bin/"'
check "libckpt-dev holds the header, libckpt.a, libckpt.so, the .pc and the CMake package" \
    '(for f in /usr/include/ckpt.h /usr/lib/$multiarch/libckpt.a /usr/lib/$multiarch/libckpt.so \
              /usr/lib/$multiarch/pkgconfig/libckpt.pc /usr/lib/$multiarch/cmake/libckpt/libckptConfig.cmake \
              /usr/lib/$multiarch/cmake/libckpt/libckptConfigVersion.cmake; do
         contents libckpt-dev | grep -qx "$f" || { echo "# missing $f"; exit 1; }; done)'
check "libckpt-dev depends on exactly this libckpt0" \
    'dpkg-deb -f "$d/libckpt-dev_${v}_$arch.deb" Depends | grep -q "libckpt0 (= $v)"'
check "ckpt holds the program, its man page and its bash completion" \
    'contents ckpt | grep -qx /usr/bin/ckpt && contents ckpt | grep -qx /usr/share/man/man1/ckpt.1.gz &&
     contents ckpt | grep -qx /usr/share/bash-completion/completions/ckpt'
check "every package carries the Apache-2.0 copyright file" \
    '(for p in libckpt0 libckpt-dev ckpt; do grep -q "License: Apache-2.0" "$root/usr/share/doc/$p/copyright" || exit 1; done)'
check "the packaged ckpt runs and prints $v" \
    '[ "$(LD_LIBRARY_PATH="$lib" "$root/usr/bin/ckpt" --version)" = "ckpt $v (libckpt $v)" ]'
check "the packaged ckpt lists the sample" \
    'LD_LIBRARY_PATH="$lib" "$root/usr/bin/ckpt" inspect testdata/sample | grep -q "^tensors: 21"'
check "the packaged man page renders" \
    'man -l "$root/usr/share/man/man1/ckpt.1.gz" 2>/dev/null | grep -q "ckpt convert"'
check "embed.c builds against the packaged library with pkg-config and runs" \
    'cc -std=c11 -Wall -Wextra -Werror examples/embed.c -o "$root/embed" \
        $(PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs libckpt) &&
     LD_LIBRARY_PATH="$lib" "$root/embed" testdata/sample | head -n 1 | grep -q "21 tensors (libckpt $v)"'
check "embed.c builds against the packaged library with CMake and runs" \
    'cmake -S examples -B "$root/cmake-build" -DCMAKE_PREFIX_PATH="$root/usr" >"$root/cmake.log" 2>&1 &&
     cmake --build "$root/cmake-build" >>"$root/cmake.log" 2>&1 &&
     "$root/cmake-build/embed" testdata/sample | head -n 1 | grep -q "21 tensors (libckpt $v)" &&
     "$root/cmake-build/embed_static" testdata/sample | head -n 1 | grep -q "21 tensors (libckpt $v)" ||
     { cat "$root/cmake.log"; false; }'
check "python3-libckpt $v was built, for every architecture" 'test -f "$d/python3-libckpt_${v}_all.deb"'
dpkg -x "$d/python3-libckpt_${v}_all.deb" "$root" 2>/dev/null
check "python3-libckpt depends on libckpt0 and numpy" \
    'deps=$(dpkg-deb -f "$d/python3-libckpt_${v}_all.deb" Depends) &&
     echo "$deps" | grep -q "libckpt0 (>= $v)" && echo "$deps" | grep -q python3-numpy'
# /usr/bin/python3: the Debian interpreter the package is for (not a pyenv or venv one on PATH)
check "the packaged binding imports, over the packaged library, and reads the sample" \
    'out=$(cd "$root" && PYTHONPATH="$root/usr/lib/python3/dist-packages" LIBCKPT_LIBRARY="$lib/libckpt.so.0" \
        /usr/bin/python3 -c "import libckpt, sys; s = libckpt.open(sys.argv[1]); t = s.tensors[\"lm_head.weight\"]
print(libckpt.__file__, libckpt.library_version, len(s.tensors), t.dtype, tuple(t.shape), s.read(\"lm_head.weight\").shape)" \
        "$OLDPWD/testdata/sample") &&
     [ "$out" = "$root/usr/lib/python3/dist-packages/libckpt/__init__.py $v 21 BF16 (317, 64) (317, 64)" ] ||
     { echo "# got: $out"; false; }'
check "lintian finds no error and no warning in the packages" \
    'lintian --fail-on error,warning "$d/libckpt_${v}_$arch.changes" >"$root/lintian.log" 2>&1 ||
     { grep -v "root privileges" "$root/lintian.log"; false; }'
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
