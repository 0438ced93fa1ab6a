#!/bin/sh
# architecture.sh: the folders of the library depend on each other one way only.
#
# LAYERS lists the role folders bottom-up: a file may include headers of its own
# folder and of folders listed before it, never after. cli/ sees only the public
# header. Then, from the built objects (nm), no two files of the library call
# each other, directly or through a longer loop.
set -eu
cd "$(dirname "$0")/.."
BUILD=${CKPT_BUILD:-build}

LAYERS="libckpt/common libckpt/io libckpt/kernels libckpt/catalog
formats/common formats/archive formats/bundle formats/torch formats/safetensors formats/dcp formats/deepspeed formats/megatron
formats/registry libckpt/plan libckpt/manifest libckpt/sink libckpt/pack libckpt/verify"

rank_of() {
    i=0
    for layer in $LAYERS; do
        i=$((i + 1))
        [ "$layer" = "$1" ] && { echo $i; return; }
    done
    echo 0
}

status=0
for file in $(find libckpt formats -name '*.[ch]' ! -path 'libckpt/include/*' | sort); do
    folder=$(dirname "$file")
    own=$(rank_of "$folder")
    if [ "$own" -eq 0 ]; then
        echo "not ok: $folder is not in LAYERS (tests/architecture.sh)"; status=1; continue
    fi
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file"); do
        case "$inc" in
        ckpt.h) continue ;;
        */*) dep=$(dirname "$inc") ;;
        *) [ -f "$folder/$inc" ] && continue
           echo "not ok: $file includes \"$inc\", which is not in its folder: name it from the top"; status=1; continue ;;
        esac
        r=$(rank_of "$dep")
        if [ "$r" -eq 0 ] || [ "$r" -gt "$own" ]; then
            echo "not ok: $file ($folder) includes $inc ($dep comes later in LAYERS)"; status=1
        fi
    done
done
for file in cli/*.[ch]; do
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file"); do
        case "$inc" in
        ckpt.h) ;;
        */*) echo "not ok: $file includes $inc: the CLI uses the public header only"; status=1 ;;
        *) [ -f "cli/$inc" ] || { echo "not ok: $file includes $inc"; status=1; } ;;
        esac
    done
done
[ $status -eq 0 ] && echo "ok - every include follows the layers"

# Calls between files: an edge A -> B when object A uses a symbol object B defines.
objects=$(find libckpt formats -name '*.c' | sort | sed "s|^\(.*\)\.c$|$BUILD/obj/\1.o|")
edges=$(for o in $objects; do
    nm "$o" | awk -v o="$o" '$1 ~ /^[TDRB]$/ || $2 ~ /^[TDRB]$/ { print "def", $NF, o } $1 == "U" { print "use", $2, o }'
done | awk '$1 == "def" { owner[$2] = $3; next } { uses[$3 " " $2] = 1 }
            END { for (k in uses) { split(k, p, " "); if ((p[2] in owner) && owner[p[2]] != p[1]) print p[1], owner[p[2]] } }' | sort -u)
loops=$(printf '%s\n' "$edges" | tsort 2>&1 >/dev/null | sed 's/^tsort: //' || true)
if [ -n "$loops" ]; then
    echo "not ok: files of the library call each other in a loop:"
    printf '%s\n' "$loops" | sed "s|$BUILD/obj/||g"
    status=1
else
    echo "ok - no two files of the library call each other"
fi
exit $status
