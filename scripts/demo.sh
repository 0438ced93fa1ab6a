#!/bin/sh
# demo.sh CKPT: the main job on the bundled sample checkpoint (make demo): convert the
# sample Llama-shaped bf16 model into what vllm-ascend and MindIE load as it is on an Ascend
# 310P (fp16, ND, Hugging Face names), and into an int8 W8A8_DYNAMIC folder in msModelSlim's
# layout for A2/A3; show what was written and prove it against the source.
set -eu
ckpt=$1
out=build/demo-310p
q=build/demo-910b-w8a8
run() {
    echo "\$ ckpt $*"
    "$ckpt" "$@"
    echo
}
run convert testdata/sample "$out" --target ascend-310p --force
run inspect "$out"
run convert testdata/sample "$q" --target ascend-910b --quant w8a8-dynamic --force
run verify "$q" --against testdata/sample
echo "\$ ckpt verify $q --against testdata/sample -v | grep 'int8 weight'"
"$ckpt" verify "$q" --against testdata/sample -v | grep 'int8 weight'
