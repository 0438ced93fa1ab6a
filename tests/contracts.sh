#!/bin/sh
# contracts.sh: the loader contracts of vllm-ascend and MindIE, checked on what convert writes
# for four Hugging Face architectures (testdata/sample: llama; testdata/contracts: qwen2,
# qwen3_moe, deepseek_v3 with fp8 weights) for each Ascend target, unquantized and quantized, by
# tests/check_contracts.py: an implementation of its own (numpy) that never calls libckpt
# (docs/targets.md, docs/quantization.md).  Then what --quant refuses.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "not ok - $py has no numpy (scripts/ensure-deps.sh test installs python3-numpy)"
    exit 1
fi

# contract NAME SRC TARGET QUANT [--skip-quant REGEX] [-- CONVERT OPTIONS]
contract() {
    name=$1 src=$2 target=$3 quant=$4
    shift 4
    skip="" extra=""
    if [ "${1:-}" = "--skip-quant" ]; then skip="--skip-quant $2"; shift 2; fi
    [ "${1:-}" = "--" ] && { shift; extra="$*"; }
    label="$(basename "$src") $target $quant${extra:+ with rules}"
    out="$work/$name"
    q=""
    [ "$quant" != none ] && q="--quant $quant"
    # shellcheck disable=SC2086
    if ! "$CKPT_BIN" convert "$src" "$out" --target "$target" $q $extra --quiet >"$work/log" 2>&1; then
        echo "not ok - $label: convert failed: $(cat "$work/log")"
        return
    fi
    golden="$CKPT_TESTDATA/contracts/$(basename "$src").golden.safetensors"
    # shellcheck disable=SC2086
    "$py" "$CKPT_TESTDATA/../tests/check_contracts.py" "$out" "$src" "$target" "$quant" "$golden" $skip |
        sed -n "s#^\(not ok\|ok\) [0-9]* - #\1 - $label: #p"
    check "$label: verify --against proves every byte" \
        '"$CKPT_BIN" verify "$out" --against "$src" --quiet >"$work/log" 2>&1'
}

for src in "$CKPT_TESTDATA/sample" "$CKPT_TESTDATA/contracts/qwen2" "$CKPT_TESTDATA/contracts/qwen3_moe" \
           "$CKPT_TESTDATA/contracts/deepseek_v3"; do
    for target in ascend-310p ascend-910b; do
        for quant in none w8a8-dynamic w8a16; do
            contract "$(basename "$src")-$target-$quant" "$src" "$target" "$quant"
        done
    done
done

# layers left out by a rule stay FLOAT, whole fused groups at a time
rules="$work/skip.rules"
printf 'model.layers.0.* quant=none\nmodel.layers.1.mlp.experts.* quant=none\n' >"$rules"
contract skip "$CKPT_TESTDATA/contracts/qwen3_moe" ascend-910b w8a8-dynamic \
    --skip-quant '^model\.layers\.(0\.|1\.mlp\.experts\.)' -- --rules "$rules"

# what vllm-ascend would refuse to load is refused
printf 'model.layers.0.self_attn.k_proj.weight quant=none\n' >"$rules"
check "a rule splitting q/k/v between types is refused (exit 2), naming both" \
    '"$CKPT_BIN" convert "$CKPT_TESTDATA/sample" "$work/mixed" --target ascend-910b --quant w8a8-dynamic \
         --rules "$rules" 2>"$work/err"; [ $? -eq 2 ] && grep -q "k_proj.weight is FLOAT" "$work/err" &&
     grep -q "q_proj.weight is W8A8_DYNAMIC" "$work/err"'
printf 'model.layers.1.mlp.experts.2.* quant=none\n' >"$rules"
check "a rule leaving one expert of a layer FLOAT is refused" \
    '! "$CKPT_BIN" convert "$CKPT_TESTDATA/contracts/qwen3_moe" "$work/mixed" --target ascend-910b \
         --quant w8a8-dynamic --rules "$rules" 2>"$work/err" && grep -q "mlp.experts" "$work/err" &&
     [ ! -e "$work/mixed" ]'
check "--quant with no Hugging Face projection to quantize is refused (exit 3)" \
    '"$CKPT_BIN" convert "$CKPT_TESTDATA/rename/megatron.safetensors" "$work/none" --target ascend-910b \
         --quant w8a16 2>"$work/err"; [ $? -eq 3 ] && grep -q "found no linear to quantize" "$work/err"'
check "--quant takes only w8a8-dynamic or w8a16 (exit 2)" \
    '"$CKPT_BIN" convert "$CKPT_TESTDATA/sample" "$work/x" --target nd --quant w4a8 2>/dev/null; [ $? -eq 2 ]'

# the checker itself fails on what it exists to catch
catches() {   # catches WHAT OUT SRC TARGET QUANT NEEDLE
    "$py" "$CKPT_TESTDATA/../tests/check_contracts.py" "$2" "$CKPT_TESTDATA/$3" "$4" "$5" \
        "$CKPT_TESTDATA/contracts/$(basename "$3").golden.safetensors" >"$work/check" 2>&1
    status=$? needle=$6
    check "the checker catches $1" '[ "$status" -ne 0 ] && grep -q "^not ok .*$needle" "$work/check"'
}
cp -r "$work/sample-ascend-910b-w8a8-dynamic" "$work/flipped"
"$py" - "$work/flipped" <<'PY'
import json, struct, sys, os
d = sys.argv[1]
shard = [f for f in os.listdir(d) if f.endswith(".safetensors")][0]
p = os.path.join(d, shard)
blob = bytearray(open(p, "rb").read())
(n,) = struct.unpack("<Q", blob[:8])
a, _ = json.loads(blob[8:8 + n])["model.layers.1.mlp.up_proj.weight"]["data_offsets"]
blob[8 + n + a + 7] ^= 1
open(p, "wb").write(blob)
desc = os.path.join(d, "quant_model_description.json")
j = json.load(open(desc))
j["model.layers.0.self_attn.v_proj.weight"] = "FLOAT"
json.dump(j, open(desc, "w"))
PY
catches "an int8 byte torch did not make" "$work/flipped" sample ascend-910b w8a8-dynamic "torch's bytes"
catches "a description type changed" "$work/flipped" sample ascend-910b w8a8-dynamic "FLOAT for the rest"
"$CKPT_BIN" convert "$CKPT_TESTDATA/sample" "$work/tiled" --target ascend-310p --nz all --quiet >/dev/null 2>&1
catches "a tiled folder" "$work/tiled" sample ascend-310p none "nothing is tiled"
"$CKPT_BIN" convert "$CKPT_TESTDATA/sample" "$work/kept" --target ascend-910b --dtype keep --quiet >/dev/null 2>&1
catches "a folder of another type" "$work/kept" contracts/qwen2 ascend-910b none "architecture's"

# a Megatron source (no config.json): its MTP layer, numbered after num_layers by --rename hf, stays FLOAT
"$CKPT_BIN" convert "$CKPT_TESTDATA/moe/deepseek_v3_seq" "$work/mtp" --target ascend-910b --rename hf \
    --quant w8a8-dynamic --quiet >/dev/null 2>&1
check "Megatron DeepSeek-V3 with --rename hf: layers 0-4 quantized, the MTP layer 5 FLOAT" \
    'd="$work/mtp/quant_model_description.json";
     grep -q "\"model.layers.4.self_attn.q_a_proj.weight\": \"W8A8_DYNAMIC\"" "$d" &&
     grep -q "\"model.layers.5.self_attn.q_a_proj.weight\": \"FLOAT\"" "$d" &&
     "$CKPT_BIN" verify "$work/mtp" --against "$CKPT_TESTDATA/moe/deepseek_v3_seq" --quiet >/dev/null 2>&1'
