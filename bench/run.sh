#!/bin/sh
# run.sh: every benchmark, each printing its figures as ratios to a baseline
# measured in the same run.  Called by `make bench` with CKPT_BUILD set.
set -eu
for b in "$CKPT_BUILD"/bench/*; do
    case "$(basename "$b")" in gen_*) continue ;; esac
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b"
done
echo "== torch_rss"
sh bench/torch_rss.sh "$CKPT_BUILD/ckpt"
# two sizes show that peak RSS does not grow with the checkpoint (BENCH_SIZES: MiB, space-separated)
for size in ${BENCH_SIZES:-2048 4096}; do
    echo "== convert ($size MiB)"
    SIZE_MIB=$size BENCH_JSON="$CKPT_BUILD/bench-convert-$size.json" \
        sh bench/convert.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_checkpoint"
done
# the torch.save (.bin, Python route) and Megatron TP=4 runs at the first size only: they show the
# same per-byte work on other inputs, and the second size would only double the run
first=$(echo ${BENCH_SIZES:-2048 4096} | cut -d' ' -f1)
echo "== torch.save .bin and the Python route ($first MiB)"
SIZE_MIB=$first BENCH_JSON="$CKPT_BUILD/bench-torch-$first.json" \
    sh bench/torch_convert.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_checkpoint" "$CKPT_BUILD/bench/gen_torch"
echo "== bundles ($first MiB)"
SIZE_MIB=$first sh bench/bundle.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_weights"
echo "== Megatron TP=4 ($first MiB)"
SIZE_MIB=$first BENCH_JSON="$CKPT_BUILD/bench-megatron-$first.json" \
    sh bench/megatron.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_torch"
echo "== Megatron MoE, TP=2 x EP=2 ($first MiB)"
SIZE_MIB=$first BENCH_JSON="$CKPT_BUILD/bench-moe-$first.json" \
    sh bench/moe.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_moe"
echo "== quantization, --quant w8a8-dynamic ($first MiB)"
SIZE_MIB=$first BENCH_JSON="$CKPT_BUILD/bench-quant-$first.json" \
    sh bench/quant.sh "$CKPT_BUILD/ckpt" "$CKPT_BUILD/bench/gen_checkpoint"
