#!/bin/sh
# packaging.sh: the version lives in one place, the CKPT_VERSION_* macros of ckpt.h
# (docs/versioning.md), and every other place that states it must agree; the license is
# stated; the Debian packaging names every library the build needs.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

h=libckpt/include/ckpt.h
macro() { sed -n "s/^#define CKPT_VERSION_$1 \(.*\)$/\1/p" "$h"; }
v=$(macro STRING | tr -d '"')

check "ckpt.h's version is MAJOR.MINOR.PATCH ($v)" \
    'echo "$v" | grep -Eq "^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"'
check "CKPT_VERSION_STRING agrees with _MAJOR, _MINOR and _PATCH" \
    '[ "$(macro MAJOR).$(macro MINOR).$(macro PATCH)" = "$v" ]'
check "ckpt --version prints it, for ckpt and the library" \
    '[ "$("$CKPT_BIN" --version)" = "ckpt $v (libckpt $v)" ]'
check "the shared library is built as libckpt.so.$v" 'test -f "$CKPT_BUILD/libckpt.so.$v"'
check "debian/changelog's top entry is $v" \
    '[ "$(sed -n "1s/^libckpt (\([^)]*\)) .*/\1/p" debian/changelog)" = "$v" ]'
# the Python binding (python/, when present) states the version for pip; it must be the same
check "python/pyproject.toml and python/libckpt/__init__.py, where present, state $v" \
    '(for f in python/pyproject.toml python/libckpt/__init__.py; do
         [ -f "$f" ] || continue
         got=$(sed -n "s/^\(__version__\|version\) *= *\"\([^\"]*\)\".*/\2/p" "$f" | head -n 1)
         [ "$got" = "$v" ] || { echo "# $f says ${got:-no version}"; exit 1; }; done)'
# released sections are "## [X.Y.Z] - date", newest first; none may be newer than the header
released=$(sed -n 's/^## \[\([0-9][0-9.]*\)\].*/\1/p' CHANGELOG.md)
check "CHANGELOG.md has an Unreleased section and its releases are newest first" \
    'grep -q "^## \[Unreleased\]" CHANGELOG.md &&
     [ "$released" = "$(printf "%s\n" $released | sort -r -V)" ]'
check "no CHANGELOG.md release is newer than $v" \
    'newest=$(printf "%s\n" $released | head -n 1);
     [ -z "$newest" ] || [ "$(printf "%s\n%s\n" "$newest" "$v" | sort -V | tail -n 1)" = "$v" ]'
check "LICENSE is the Apache License 2.0 and the README says so" \
    'grep -q "Apache License" LICENSE && grep -q "Version 2.0, January 2004" LICENSE &&
     grep -q "Apache-2.0" README.md'
# every library the build group of ensure-deps.sh installs is a build dependency of the Debian
# source package and a dependency of libckpt-dev (whose .pc and CMake package name it)
build_deps=$(sed -n 's/^ *build) echo "\(.*\)" ;;$/\1/p' scripts/ensure-deps.sh)
field() { awk -v f="$1" -v p="$2" '
    /^Source:|^Package:/ { s = $2 } s == p && $0 ~ "^" f ":" { on = 1; sub("^" f ":", ""); print; next }
    on && /^ / { print; next } { on = 0 }' debian/control | tr ',' '\n' | sed 's/(.*)//; s/ //g' | grep .; }
check "debian/control Build-Depends has every -dev package of ensure-deps.sh build" \
    '(for p in $build_deps; do case $p in gcc | make) continue ;; esac
         field Build-Depends libckpt | grep -qx "$p" || { echo "# not in Build-Depends: $p"; exit 1; }; done)'
check "libckpt-dev depends on every -dev package of ensure-deps.sh build" \
    '(for p in $build_deps; do case $p in *-dev) field Depends libckpt-dev | grep -qx "$p" ||
         { echo "# not in libckpt-dev Depends: $p"; exit 1; } ;; esac; done)'
# what lintian (make check-deb) would refuse and make check can see at once
check "debian/changelog (sign-off lines aside) and debian/control's descriptions fit in 80 columns" \
    '! awk "!/^ -- / && length > 80 { print FILENAME \":\" FNR \": \" \$0; bad = 1 } END { exit !bad }" debian/changelog &&
     ! awk "/^Description:/ { d = 1; next } /^[^ ]/ { d = 0 } d && length > 80 { print; bad = 1 } END { exit !bad }" debian/control'
