#!/usr/bin/python3
"""check_contracts.py OUT SRC TARGET QUANT GOLDEN [--skip-quant REGEX]

Checks a folder `ckpt convert SRC OUT --target TARGET [--quant QUANT]` wrote against
what vllm-ascend and MindIE load, with an implementation of its own: a safetensors
reader, the tensor names and shapes the Hugging Face architecture in SRC's
config.json declares (llama, qwen2, qwen3_moe, deepseek_v3), the dtype policy, the
msModelSlim description file, and the exact int8 bytes torch made
(testdata/contracts/make_contracts.py).  Nothing here calls libckpt: expected values
are casts done by numpy, fp8 dequantized from the OCP e4m3 definition, and torch's
goldens.  Prints one "ok N - ..." or "not ok N - ..." line per check (TAP).

QUANT is none, w8a8-dynamic or w8a16.  --skip-quant: projections whose names match
REGEX were excluded from quantization by rules.
"""
import json
import os
import re
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I8": np.int8, "F8_E4M3": np.uint8,
          "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
QUANT_TYPES = {"w8a8-dynamic": "W8A8_DYNAMIC", "w8a16": "W8A16"}
TARGET_DTYPE = {"ascend-310p": "F16", "ascend-910b": "BF16"}
TORCH_DTYPE = {"F16": "float16", "BF16": "bfloat16"}
KEEP_F32 = re.compile(r".*\.e_score_correction_bias$")
PROJECTIONS = re.compile(r"^model\.layers\.(\d+)\.(self_attn\.(q|k|v|o|q_a|q_b|kv_b)_proj|self_attn\.kv_a_proj_with_mqa"
                         r"|mlp\.(gate|up|down)_proj|mlp\.experts\.\d+\.(gate|up|down)_proj"
                         r"|mlp\.shared_experts\.(gate|up|down)_proj)\.weight$")

count = 0
failed = 0


def check(ok, what, detail=""):
    global count, failed
    count += 1
    failed += not ok
    print("%s %d - %s%s" % ("ok" if ok else "not ok", count, what, "" if ok else ": " + detail))
    return ok


# ---- safetensors, read by the format description ----

def read_file(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = (e["dtype"], tuple(e["shape"]), blob[8 + n + a:8 + n + b])
    return out, meta


def read_folder(folder, index_name):
    with open(os.path.join(folder, index_name)) as f:
        weight_map = json.load(f)["weight_map"]
    tensors, meta = {}, {}
    for shard in sorted(set(weight_map.values())):
        t, m = read_file(os.path.join(folder, shard))
        tensors.update(t)
        meta.update(m)
    return tensors, meta, weight_map


def array(t):
    dtype, shape, raw = t
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)


# ---- values as floats, and numpy's casts ----

E4M3 = np.array([(-1 if c & 0x80 else 1) * ((1 + (c & 7) / 8) * 2.0 ** (((c >> 3) & 15) - 7) if (c >> 3) & 15
                                             else (c & 7) / 8 * 2.0 ** -6) for c in range(256)], dtype=np.float32)


def as_f32(t):
    a = array(t)
    if t[0] == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def to_bf16(x):
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def cast_bits(x, dtype):
    """float32 values as the stored bits of dtype, rounded to nearest even (numpy's float16 cast is)."""
    if dtype == "BF16":
        return to_bf16(x).tobytes()
    if dtype == "F16":
        return x.astype(np.float16).tobytes()
    return x.astype(np.float32).tobytes()


def dequantized(src, name, block):
    codes = array(src[name])
    scale = as_f32(src[name + "_scale_inv"])
    s = np.repeat(np.repeat(scale, block[0], axis=0), block[1], axis=1)[:codes.shape[0], :codes.shape[1]]
    return E4M3[codes] * s   # float32 products, as torch's w.float() * s


# ---- the architectures, from config.json ----

def mlp(p, inter, h):
    return {p + "gate_proj.weight": (inter, h), p + "up_proj.weight": (inter, h), p + "down_proj.weight": (h, inter)}


def llama_like(c, qkv_bias, qk_norm):
    h, heads = c["hidden_size"], c["num_attention_heads"]
    kv, hd = c.get("num_key_value_heads", heads), c.get("head_dim", h // heads)
    out = {"model.embed_tokens.weight": (c["vocab_size"], h), "model.norm.weight": (h,)}
    if not c.get("tie_word_embeddings", False):
        out["lm_head.weight"] = (c["vocab_size"], h)
    experts = c.get("num_experts", 0)
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
        for proj, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            out[p + "self_attn.%s_proj.weight" % proj] = (rows, h)
            if qkv_bias:
                out[p + "self_attn.%s_proj.bias" % proj] = (rows,)
        out[p + "self_attn.o_proj.weight"] = (h, heads * hd)
        if qk_norm:
            out[p + "self_attn.q_norm.weight"] = (hd,)
            out[p + "self_attn.k_norm.weight"] = (hd,)
        step = c.get("decoder_sparse_step", 1)
        sparse = experts > 0 and i not in c.get("mlp_only_layers", []) and (i + 1) % step == 0
        if sparse:
            out[p + "mlp.gate.weight"] = (experts, h)
            for e in range(experts):
                out.update(mlp(p + "mlp.experts.%d." % e, c["moe_intermediate_size"], h))
        else:
            out.update(mlp(p + "mlp.", c["intermediate_size"], h))
    return out


def deepseek_v3(c):
    h, heads = c["hidden_size"], c["num_attention_heads"]
    nope, rope, v, kvl = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
    out = {"model.embed_tokens.weight": (c["vocab_size"], h), "model.norm.weight": (h,),
           "lm_head.weight": (c["vocab_size"], h)}
    layers, mtp = c["num_hidden_layers"], c.get("num_nextn_predict_layers", 0)
    for i in range(layers + mtp):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
        if c.get("q_lora_rank"):
            out[p + "self_attn.q_a_proj.weight"] = (c["q_lora_rank"], h)
            out[p + "self_attn.q_a_layernorm.weight"] = (c["q_lora_rank"],)
            out[p + "self_attn.q_b_proj.weight"] = (heads * (nope + rope), c["q_lora_rank"])
        else:
            out[p + "self_attn.q_proj.weight"] = (heads * (nope + rope), h)
        out[p + "self_attn.kv_a_proj_with_mqa.weight"] = (kvl + rope, h)
        out[p + "self_attn.kv_a_layernorm.weight"] = (kvl,)
        out[p + "self_attn.kv_b_proj.weight"] = (heads * (nope + v), kvl)
        out[p + "self_attn.o_proj.weight"] = (h, heads * v)
        if i >= c["first_k_dense_replace"] and i % c.get("moe_layer_freq", 1) == 0:
            out[p + "mlp.gate.weight"] = (c["n_routed_experts"], h)
            out[p + "mlp.gate.e_score_correction_bias"] = (c["n_routed_experts"],)
            for e in range(c["n_routed_experts"]):
                out.update(mlp(p + "mlp.experts.%d." % e, c["moe_intermediate_size"], h))
            out.update(mlp(p + "mlp.shared_experts.", c["moe_intermediate_size"] * c["n_shared_experts"], h))
        else:
            out.update(mlp(p + "mlp.", c["intermediate_size"], h))
        if i >= layers:   # DeepSeek's multi-token-prediction layer, as its checkpoints hold it
            out[p + "embed_tokens.weight"] = (c["vocab_size"], h)
            out[p + "enorm.weight"] = (h,)
            out[p + "hnorm.weight"] = (h,)
            out[p + "eh_proj.weight"] = (h, 2 * h)
            out[p + "shared_head.norm.weight"] = (h,)
            out[p + "shared_head.head.weight"] = (c["vocab_size"], h)
    return out


def architecture(c):
    kind = c["model_type"]
    if kind == "llama":
        return llama_like(c, c.get("attention_bias", False), False)
    if kind == "qwen2":
        return llama_like(c, True, False)
    if kind == "qwen3_moe":
        return llama_like(c, False, True)
    if kind == "deepseek_v3":
        return deepseek_v3(c)
    raise SystemExit("check_contracts.py: no architecture for model_type %s" % kind)


# vllm-ascend fuses these (modelslim_config.py packed_modules_model_mapping): one type each
def fused_group(name):
    m = re.match(r"^(.*\.experts)\.\d+\.(gate|up|down)_proj\.weight$", name)
    if m:
        return m.group(1)
    m = re.match(r"^(.*\.self_attn)\.(q|k|v)_proj\.weight$", name)
    if m:
        return m.group(1) + ".qkv_proj"
    m = re.match(r"^(.*\.self_attn)\.(q_a_proj|kv_a_proj_with_mqa)\.weight$", name)
    if m:
        return m.group(1) + ".fused_qkv_a_proj"
    m = re.match(r"^(.*)\.(gate|up)_proj\.weight$", name)
    return m.group(1) + ".gate_up_proj" if m else None


def main():
    args = sys.argv[1:]
    skip = None
    if "--skip-quant" in args:
        k = args.index("--skip-quant")
        skip = re.compile(args[k + 1])
        del args[k:k + 2]
    out_dir, src_dir, target, quant, golden_path = args
    qtype = QUANT_TYPES.get(quant)
    with open(os.path.join(src_dir, "config.json")) as f:
        config = json.load(f)
    src, _, _ = read_folder(src_dir, "model.safetensors.index.json")
    golden, _ = read_file(golden_path)
    block = config.get("quantization_config", {}).get("weight_block_size", [128, 128])
    want_dtype = TARGET_DTYPE[target]

    # files
    files = sorted(os.listdir(out_dir))
    stem = "quant_model_weights" if qtype else "model"
    index_name = stem + ".safetensors.index.json"
    shards = [f for f in files if f.endswith(".safetensors")]
    check(index_name in files, "the index is %s" % index_name, str(files))
    check(shards and all(re.match(r"^%s-\d{5}-of-%05d\.safetensors$" % (stem, len(shards)), s) for s in shards),
          "shards are named %s-0000i-of-0000N.safetensors" % stem, str(shards))
    check(("quant_model_description.json" in files) == bool(qtype), "a description exactly when quantized", str(files))
    out, meta, weight_map = read_folder(out_dir, index_name)
    check(set(weight_map) == set(out), "the index maps every stored tensor and no other",
          str(set(weight_map) ^ set(out)))
    check(not any(k.startswith("ckpt.layout.") for k in meta), "nothing is tiled (no layout record)",
          str([k for k in meta if k.startswith("ckpt.layout.")][:3]))

    # config.json
    with open(os.path.join(out_dir, "config.json")) as f:
        out_config = json.load(f)
    check(out_config.get("torch_dtype") == TORCH_DTYPE[want_dtype], "config.json torch_dtype is %s" %
          TORCH_DTYPE[want_dtype], str(out_config.get("torch_dtype")))
    check("quantization_config" not in out_config, "config.json has no quantization_config")
    check(all(out_config.get(k) == config[k] for k in config if k not in ("torch_dtype", "quantization_config")),
          "config.json keeps every other field")

    # names and shapes: the architecture's, and the quantization's tensors beside its weights
    arch = architecture(config)
    layers = config["num_hidden_layers"]

    def quantized(name):
        m = PROJECTIONS.match(name)
        return bool(qtype and m and int(m.group(1)) < layers and not (skip and skip.search(name)))

    expected = dict(arch)
    for name, shape in arch.items():
        if quantized(name):
            expected[name + "_scale"] = (shape[0], 1)
            expected[name + "_offset"] = (shape[0], 1)
    missing, extra = sorted(set(expected) - set(out)), sorted(set(out) - set(expected))
    check(not missing and not extra, "tensor names are the %s architecture's" % config["model_type"],
          "missing %s, extra %s" % (missing[:4], extra[:4]))
    bad = [n for n in expected if n in out and out[n][1] != tuple(expected[n])]
    check(not bad, "tensor shapes are the architecture's", ", ".join("%s %s" % (n, out[n][1]) for n in bad[:4]))

    # dtypes
    def want(name):
        if quantized(name):
            return "I8"
        if name.endswith("_scale") or name.endswith("_offset"):
            return "F32"
        return "F32" if KEEP_F32.match(name) else want_dtype
    bad = [n for n in out if out[n][0] != want(n)]
    check(not bad, "dtypes: %s, int8 weights, float32 scales, offsets and routing biases" % want_dtype,
          ", ".join("%s %s" % (n, out[n][0]) for n in bad[:4]))

    # values of the tensors left in a floating type: numpy's cast of the source (fp8 dequantized first)
    bad = []
    for name in arch:
        if name not in out or quantized(name) or out[name][0] != want(name):
            continue
        if src[name][0] == "F8_E4M3":
            x = dequantized(src, name, block)
        else:
            x = as_f32(src[name])
        if cast_bits(x, want(name)) != out[name][2]:
            bad.append(name)
    check(not bad, "every unquantized tensor holds the source cast to its type", str(bad[:4]))

    if qtype:
        # the int8 bytes and scales torch made, and zero offsets
        names = [n for n in arch if quantized(n)]
        bad = [n for n in names if n not in golden or out[n][2] != golden[n][2] or
               out[n + "_scale"][2] != golden[n + "_scale"][2]]
        check(names and not bad, "%d int8 weights and their scales are torch's bytes" % len(names), str(bad[:4]))
        bad = [n for n in names if np.any(array(out[n + "_offset"]) != 0)]
        check(not bad, "offsets are zeros", str(bad[:4]))

        # quant_model_description.json
        with open(os.path.join(out_dir, "quant_model_description.json")) as f:
            desc = json.load(f)
        globals_ = {"version": "1.0.0", "model_quant_type": qtype, "metadata": {}, "group_size": 0, "optional": {}}
        check(all(desc.get(k) == v for k, v in globals_.items()), "description: version, model_quant_type, "
              "metadata, group_size, optional", str({k: desc.get(k) for k in globals_}))
        listed = {k: v for k, v in desc.items() if k not in globals_}
        names_wanted = set(out) | ({"lm_head.weight"} if "lm_head.weight" not in out else set())
        check(set(listed) == names_wanted, "description lists every tensor (and lm_head.weight when tied)",
              str(sorted(set(listed) ^ names_wanted)[:4]))
        bad = [k for k, v in listed.items()
               if v != (qtype if quantized(re.sub(r"_(scale|offset)$", "", k)) else "FLOAT")]
        check(not bad, "description: %s for quantized linears, FLOAT for the rest" % qtype, str(bad[:4]))
        groups = {}
        for k, v in listed.items():
            g = fused_group(k)
            if g:
                groups.setdefault(g, set()).add(v)
        bad = [g for g, types in groups.items() if len(types) > 1]
        check(not bad, "fused linears (q/k/v, gate/up, q_a/kv_a, a layer's experts) share a type", str(bad[:4]))

    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
