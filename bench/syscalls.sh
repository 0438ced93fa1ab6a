#!/bin/sh
# syscalls.sh CKPT GEN_CHECKPOINT GEN_TORCH [MIB]: where each path's system time goes, for
# docs/performance.md. For each convert path, verify and verify --against of a generated checkpoint
# (default 256 MiB): the count of read and write calls (copy_file_range counts as a write) and the
# bytes they move (strace -f), and the CPU seconds of one run without strace (GNU time). Counts are
# exact; the seconds are one noisy run.
#   BENCH_DIR  where to work (default /var/tmp/ckpt-syscalls)
set -eu
ckpt=$1
gen=$2
gen_torch=$3
mib=${4:-256}
dir=${BENCH_DIR:-/var/tmp/ckpt-syscalls}
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
"$gen" "$dir/src" "$mib" 4 >/dev/null
"$gen_torch" bin "$dir/bin" "$mib" 4 >/dev/null

# one line: calls and MiB of pread64+read, of pwrite64+write, fsync calls, then user and system seconds
measure() {
    label=$1
    shift
    rm -rf "$dir/out"
    sync
    strace -f -qq -e trace=read,pread64,write,pwrite64,copy_file_range,fsync -o "$dir/trace" "$@" >/dev/null 2>&1
    rm -rf "$dir/out"
    sync
    /usr/bin/time -f "%U %S" -o "$dir/time" "$@" >/dev/null 2>&1
    awk -v label="$label" -v cpu="$(cat "$dir/time")" '
        # a call another thread interrupted is split: "NAME(... <unfinished ...>", then "<... NAME resumed>"
        /unfinished \.\.\.>$/ { next }
        /[ <](pread64|read)(\(| resumed>)/ { n = $NF + 0; if (n > 0) { rb += n }; rc++ }
        /[ <](pwrite64|write|copy_file_range)(\(| resumed>)/ { n = $NF + 0; if (n > 0) { wb += n }; wc++ }
        /[ <]fsync(\(| resumed>)/ { fc++ }
        END { split(cpu, c, " ");
              printf "| %s | %d | %.0f | %d | %.0f | %d | %.2f | %.2f |\n", label, rc, rb / 1048576, wc,
                     wb / 1048576, fc, c[1], c[2] }' "$dir/trace"
}

echo "| command ($mib MiB) | reads | MiB read | writes | MiB written | fsyncs | user s | sys s |"
echo "|---|---|---|---|---|---|---|---|"
measure "cp -r + sync" sh -c "cp -r '$dir/src' '$dir/out' && sync"
measure "convert --target ascend-310p" "$ckpt" convert "$dir/src" "$dir/out" --target ascend-310p --quiet
measure "convert --target ascend-910b" "$ckpt" convert "$dir/src" "$dir/out" --target ascend-910b --quiet
measure "convert --target nd" "$ckpt" convert "$dir/src" "$dir/out" --target nd --quiet
measure "convert --quant w8a8-dynamic" "$ckpt" convert "$dir/src" "$dir/out" --target ascend-910b --quant w8a8-dynamic --quiet
measure "convert --nz all" "$ckpt" convert "$dir/src" "$dir/out" --target ascend-310p --nz all --quiet
measure "convert of .bin shards" "$ckpt" convert "$dir/bin" "$dir/out" --target ascend-310p --quiet
"$ckpt" convert "$dir/src" "$dir/keep" --target ascend-310p --quiet >/dev/null
sync
measure "cat > /dev/null (of the output)" sh -c "cat '$dir'/keep/* > /dev/null"
measure "verify" "$ckpt" verify "$dir/keep"
measure "verify --against" "$ckpt" verify "$dir/keep" --against "$dir/src"
