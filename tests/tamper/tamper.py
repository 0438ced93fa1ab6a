#!/usr/bin/env python3
"""tamper.py DIR OP [ARG...]: edits a folder ckpt convert wrote the way a hostile editor would, then
rewrites every size and XXH3-128 in its ckpt-manifest.json so that the manifest agrees with the edit
(the editor owns the manifest too: docs/verify.md, "Threat model").

Shards are rewritten by the safetensors rules of huggingface/safetensors
(safetensors/src/tensor.rs @v0.4.5 `Metadata::validate`, `SafeTensors::read_metadata`: an
8-byte little-endian header length, the JSON header padded with spaces, then the data buffer).
Hashes come from xxh128sum (Debian xxhash), the XXH3-128 canonical form the manifest stores.
"""
import json
import os
import struct
import subprocess
import sys

MANIFEST = "ckpt-manifest.json"


def xxh128(path):
    return subprocess.run(["xxh128sum", path], check=True, capture_output=True, text=True).stdout.split()[0]


def read_shard(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write_shard(path, header, body):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + body)


def tensor_bytes(path, name):
    header, body = read_shard(path)
    b, e = header[name]["data_offsets"]
    return body[b:e]


def rehash(folder, m, rehash_tensors=True):
    """The editor's last step: every listed file's size and hash, and every stored tensor's hash."""
    for f in m["files"]:
        p = os.path.join(folder, f["path"])
        if os.path.exists(p):
            f["size"] = os.path.getsize(p)
            f["xxh3_128"] = xxh128(p)
    if rehash_tensors:
        for t in m["tensors"]:
            p = os.path.join(folder, t.get("file") or "")
            if "file" in t and os.path.isfile(p):
                tmp = os.path.join(folder, ".tensor")
                open(tmp, "wb").write(tensor_bytes(p, t["name"]))
                t["xxh3_128"] = xxh128(tmp)
                os.remove(tmp)
    json.dump(m, open(os.path.join(folder, MANIFEST), "w"), indent=2)


def main():
    folder, op, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    m = json.load(open(os.path.join(folder, MANIFEST)))
    stored = [t for t in m["tensors"] if "file" in t]
    shard = os.path.join(folder, stored[0]["file"])
    index = next((f["path"] for f in m["files"] if f["path"].endswith(".index.json")), None)

    if op == "set-top":
        # class 1/7: a top-level field of the manifest (the target) set to a JSON value
        m[args[0]] = json.loads(args[1])
    elif op == "set-option":
        # class 1: a recorded option changed (with the bytes it would give left as they are)
        m["options"][args[0]] = json.loads(args[1])
    elif op == "edit-config":
        # class 2: config.json points at remote code and has another head count
        p = os.path.join(folder, "config.json")
        c = json.load(open(p))
        c["auto_map"] = {"AutoModelForCausalLM": "evil--modeling.Model"}
        c["num_attention_heads"] = c.get("num_attention_heads", 1) + 1
        json.dump(c, open(p, "w"), indent=2)
    elif op == "add-file":
        # class 2: an extra file, listed in the manifest as if convert had copied it
        open(os.path.join(folder, args[0]), "w").write("import os\nos.system('true')\n")
        m["files"].append({"path": args[0], "size": 0, "xxh3_128": "0" * 32})
    elif op == "remove-file":
        os.remove(os.path.join(folder, args[0]))
        m["files"] = [f for f in m["files"] if f["path"] != args[0]]
    elif op == "edit-index":
        # class 2: the index names a tensor twice over (another key mapping to the same shard)
        p = os.path.join(folder, index)
        doc = json.load(open(p))
        doc["weight_map"]["extra.weight"] = stored[0]["file"]
        json.dump(doc, open(p, "w"), indent=2)
    elif op == "append-tensor":
        # class 3: a tensor appended to a shard and the index; with "twice", an existing manifest
        # entry listed twice keeps the manifest's count equal to the header's
        header, body = read_shard(shard)
        extra = b"\x00\x3c" * 16
        header[args[0]] = {"dtype": "F16", "shape": [16], "data_offsets": [len(body), len(body) + len(extra)]}
        write_shard(shard, header, body + extra)
        if index:
            p = os.path.join(folder, index)
            doc = json.load(open(p))
            doc["weight_map"][args[0]] = stored[0]["file"]
            doc["metadata"]["total_size"] += len(extra)
            json.dump(doc, open(p, "w"), indent=2)
        if "twice" in args[1:]:
            m["tensors"].append(dict(stored[0]))
        if "listed" in args[1:]:
            t = dict(stored[0], name=args[0], dtype="F16", shape=[16], nd_shape=[16], layout="ND",
                     offset=len(body), nbytes=len(extra))
            t.pop("device", None)
            t["source"] = {"name": args[0], "dtype": "F16"}
            m["tensors"].append(t)
    elif op == "drop-tensor":
        # class 3: a tensor removed from its shard, the index and the manifest
        header, body = read_shard(shard)
        name = args[0]
        b, e = header.pop(name)["data_offsets"]
        for k, v in header.items():
            if k != "__metadata__" and v["data_offsets"][0] >= e:
                v["data_offsets"] = [v["data_offsets"][0] - (e - b), v["data_offsets"][1] - (e - b)]
        meta = header.get("__metadata__", {})
        meta.pop("ckpt.layout." + name, None)
        write_shard(shard, header, body[:b] + body[e:])
        for t in m["tensors"]:
            if t.get("file") == stored[0]["file"] and t.get("offset", 0) >= e:
                t["offset"] -= e - b
        m["tensors"] = [t for t in m["tensors"] if t["name"] != name]
        if index:
            p = os.path.join(folder, index)
            doc = json.load(open(p))
            doc["weight_map"].pop(name)
            doc["metadata"]["total_size"] -= e - b
            json.dump(doc, open(p, "w"), indent=2)
    elif op == "trailing-bytes":
        # class 4: bytes after the data buffer (tensor.rs refuses them: MetadataIncompleteBuffer)
        open(shard, "ab").write(b"hidden payload")
    elif op == "wide-span":
        # class 4: the last tensor's data_offsets span more bytes than its shape and dtype need
        header, body = read_shard(shard)
        last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
        header[last]["data_offsets"][1] += 2
        write_shard(shard, header, body + b"\x00\x00")
    elif op == "set-tensor-field":
        # class 7: one field of one manifest tensor set to a JSON value ("source.dtype" reaches inside)
        t = m["tensors"][int(args[0])]
        *path, key = args[1].split(".")
        for p in path:
            t = t.setdefault(p, {})
        t[key] = json.loads(args[2])
    else:
        sys.exit("unknown op " + op)
    rehash(folder, m)


if __name__ == "__main__":
    main()
