#!/bin/sh
# demo.sh CKPT: the main job on the bundled sample checkpoint (make demo): convert the
# sample Llama-shaped bf16 model for an Ascend 310P (fp16, FRACTAL_NZ matmul weights),
# then show what was written.
set -eu
ckpt=$1
out=build/demo-310p
echo "\$ ckpt convert testdata/sample $out --target ascend-310p --force"
"$ckpt" convert testdata/sample "$out" --target ascend-310p --force
echo
echo "\$ ckpt inspect $out"
"$ckpt" inspect "$out"
