"""libckpt.convert: the folder it writes, read back by the independent reader, against numpy's casts."""
import os
import shutil
import tempfile
import threading
import unittest

import numpy as np

import libckpt
from fixtures import bf16_bits_to_f16_bits, data, read_folder


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.source = read_folder(data("sample"))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def out(self, name="out"):
        return os.path.join(self.tmp, name)

    def test_ascend_310p_writes_numpys_float16_of_every_bf16_value(self):
        seen = []
        stats = libckpt.convert(data("sample"), self.out(), target="ascend-310p",
                                progress=lambda done, total: seen.append((done, total, threading.get_ident())))
        got = read_folder(self.out())
        self.assertEqual(sorted(got), sorted(self.source))
        for name, (dtype, shape, blob) in self.source.items():
            out_dtype, out_shape, out_blob = got[name]
            self.assertEqual((out_dtype, out_shape), ("F16" if dtype == "BF16" else dtype, shape), name)
            if dtype == "BF16":
                want = bf16_bits_to_f16_bits(np.frombuffer(blob, dtype="<u2"))
                np.testing.assert_array_equal(np.frombuffer(out_blob, dtype="<u2"), want, err_msg=name)
        self.assertEqual(stats.tensors, len(self.source))
        self.assertEqual(stats.bytes_in, sum(len(b) for _, _, b in self.source.values()))
        # progress: bytes only grow, and end at the total
        done = [d for d, _, _ in seen]
        self.assertEqual(done, sorted(done))
        self.assertEqual(seen[-1][0], seen[-1][1])
        self.assertTrue(os.path.isfile(os.path.join(self.out(), "ckpt-manifest.json")))

    def test_ascend_910b_keeps_bf16_bits_and_takes_an_open_source(self):
        with libckpt.open(data("sample")) as src:
            libckpt.convert(src, self.out(), target="ascend-910b", jobs=1)
            self.assertEqual(len(src.tensors), len(self.source))   # the caller's source stays open
        got = read_folder(self.out())
        for name, (dtype, shape, blob) in self.source.items():
            self.assertEqual(got[name], (dtype, shape, blob), name)

    def test_options_mirror_the_cli(self):
        libckpt.convert(data("sample"), self.out(), target="nd", dtype="f32", max_shard_bytes=100000)
        got = read_folder(self.out())
        shards = [n for n in os.listdir(self.out()) if n.endswith(".safetensors")]
        self.assertGreater(len(shards), 2)
        name = "model.embed_tokens.weight"
        bits = np.frombuffer(self.source[name][2], dtype="<u2").astype(np.uint32) << 16
        self.assertEqual(got[name][0], "F32")
        self.assertEqual(got[name][2], bits.astype("<u4").tobytes())

    def test_cancel_from_the_progress_callback(self):
        with self.assertRaises(libckpt.CancelledError) as cm:
            libckpt.convert(data("sample"), self.out(), target="ascend-910b", progress=lambda done, total: True)
        self.assertEqual(cm.exception.status, 11)
        self.assertFalse(os.path.exists(self.out()))
        self.assertEqual(os.listdir(self.tmp), [])   # no temporary folder left either

    def test_an_exception_in_the_callback_stops_and_is_raised(self):
        def boom(done, total):
            raise RuntimeError("stop here")
        with self.assertRaisesRegex(RuntimeError, "stop here"):
            libckpt.convert(data("sample"), self.out(), target="nd", progress=boom)
        self.assertFalse(os.path.exists(self.out()))

    def test_refusals(self):
        with self.assertRaises(ValueError):
            libckpt.convert(data("sample"), self.out(), target="910b")
        with self.assertRaises(ValueError):
            libckpt.convert(data("sample"), self.out(), target="nd", nz="tiles")
        with self.assertRaises(ValueError):
            libckpt.convert(data("sample"), self.out(), target="nd", dtype="fp12")
        libckpt.convert(data("sample"), self.out(), target="nd")
        with self.assertRaises(libckpt.ExistsError):
            libckpt.convert(data("sample"), self.out(), target="nd")
        libckpt.convert(data("sample"), self.out(), target="ascend-310p", force=True)
        self.assertEqual(read_folder(self.out())["lm_head.weight"][0], "F16")

    def test_quantized_folder_reads_back_as_int8_with_scales(self):
        libckpt.convert(data("sample"), self.out(), target="ascend-910b", quant="w8a8-dynamic")
        with libckpt.open(self.out()) as q:
            w = q.tensors["model.layers.0.self_attn.q_proj.weight"]
            self.assertEqual(w.dtype, "I8")
            self.assertEqual(q.read(w.name).dtype, np.int8)
            self.assertIn("model.layers.0.self_attn.q_proj.weight_scale", q.tensors)


if __name__ == "__main__":
    unittest.main()
