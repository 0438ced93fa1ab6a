#!/bin/sh
# ensure-deps.sh GROUP...: installs the Debian packages a build step needs, when missing.
#   build  headers and libraries libckpt links against
#   test   tools the test suites call (xmllint; numpy for tests/check_contracts.py; xxhsum / xxh128sum for
#          tests/sums.sh and tests/tamper.sh; cmake and the -dev files libarchive's .pc names, for
#          the install tests' CMake and static links; venv, setuptools and wheel for tests/python.sh's
#          offline pip install of python/)
#   deb    what dpkg-buildpackage needs, and lintian (make deb, make check-deb)
#   fuzz   clang with libFuzzer
#   bench  hyperfine (paired runs), GNU time (peak RSS), zstd (bundle baselines), python3 (the harness)
set -eu

packages_for() {
    case "$1" in
    build) echo "gcc make pkg-config libzstd-dev libarchive-dev libxxhash-dev libjansson-dev libssl-dev" ;;
    test) echo "check libxml2-utils python3-numpy xxhash cmake liblz4-dev libacl1-dev python3-venv python3-setuptools python3-wheel" ;;
    deb) echo "dpkg-dev debhelper dh-python fakeroot lintian" ;;
    fuzz) echo "clang libclang-rt-14-dev" ;;
    bench) echo "time hyperfine zstd python3" ;;
    *) echo "ensure-deps.sh: unknown group $1" >&2; exit 2 ;;
    esac
}

missing=""
for group in "$@"; do
    for pkg in $(packages_for "$group"); do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $pkg"
        fi
    done
done
[ -z "$missing" ] && exit 0

echo "Installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "ensure-deps.sh: need root to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
