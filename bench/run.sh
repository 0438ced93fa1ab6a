#!/bin/sh
# run.sh: `make bench` (CKPT_BUILD set by the Makefile): bench/suite.py's rows, each a ckpt command
# paired with its baseline under hyperfine, and the markdown table of the run in bench/results/.
# BENCH_EXTRA=1 also runs the kernel, Megatron and MoE benchmarks, which have no bar of their own.
set -eu
python3 bench/suite.py "$CKPT_BUILD"
[ "${BENCH_EXTRA:-0}" = 1 ] || exit 0
echo "== bench_kernels"
"$CKPT_BUILD/bench/bench_kernels"
echo "== torch_rss"
sh bench/torch_rss.sh "$CKPT_BUILD/ckpt"
mib=$(awk -v s="$(echo ${BENCH_SIZES:-2} | cut -d' ' -f1)" 'BEGIN { printf "%d", s * 1024 }')
echo "== Megatron TP=4 ($mib MiB)"
SIZE_MIB=$mib BENCH_JSON="$CKPT_BUILD/bench-megatron.json" sh bench/megatron.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_torch"
echo "== Megatron MoE, TP=2 x EP=2 ($mib MiB)"
SIZE_MIB=$mib BENCH_JSON="$CKPT_BUILD/bench-moe.json" sh bench/moe.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_moe"
echo "== torch.save .bin and the Python route ($mib MiB)"
SIZE_MIB=$mib BENCH_JSON="$CKPT_BUILD/bench-torch.json" \
    sh bench/torch_convert.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_checkpoint" "$CKPT_BUILD/bench/gen_torch"
