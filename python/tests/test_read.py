"""libckpt.open and Source.read against the fixtures' own bytes and torch's goldens."""
import json
import os
import unittest

import numpy as np

import libckpt
from fixtures import EXTERNAL, RAW, data, fnv1a64, raw, read_folder, read_safetensors


class SampleTest(unittest.TestCase):
    """testdata/sample: a two-shard Llama-like safetensors folder (testdata/make_sample.py)."""

    @classmethod
    def setUpClass(cls):
        cls.src = libckpt.open(data("sample"))
        cls.want = read_folder(data("sample"))

    @classmethod
    def tearDownClass(cls):
        cls.src.close()

    def test_lists_every_tensor_with_its_dtype_and_shape(self):
        self.assertEqual(self.src.format, "safetensors")
        self.assertEqual(sorted(self.src.tensors), sorted(self.want))
        for name, (dtype, shape, _) in self.want.items():
            t = self.src.tensors[name]
            self.assertEqual((t.dtype, t.shape), (dtype, shape), name)
            self.assertEqual(t.nbytes, len(self.want[name][2]))

    def test_reads_the_bytes_the_files_hold(self):
        for name, (dtype, shape, blob) in self.want.items():
            a = self.src.read(name)
            self.assertEqual(a.shape, shape, name)
            self.assertEqual(raw(a), blob, name)

    def test_bf16_is_uint16_bits_without_ml_dtypes(self):
        a = self.src.read("model.embed_tokens.weight")
        self.assertEqual(a.dtype, libckpt.DTYPES["BF16"])
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            self.assertEqual(a.dtype, np.uint16)

    def test_values_are_torchs(self):
        # testdata/sample_golden.json: the first values of two tensors, as torch printed them
        with open(data("sample_golden.json")) as f:
            golden = json.load(f)
        for name, values in golden.items():
            got = libckpt.bf16_to_float32(self.src.read(name).view(np.uint16)).ravel()[:len(values)]
            np.testing.assert_array_equal(got, np.array(values, dtype=np.float32), err_msg=name)

    def test_row_ranges(self):
        name = "model.embed_tokens.weight"
        full = self.src.read(name)
        for rows, want in (((3, 9), full[3:9]), (slice(300, None), full[300:]), (5, full[5:6]), (-1, full[-1:]),
                           (slice(0, 0), full[:0]), ((310, 400), full[310:])):
            np.testing.assert_array_equal(self.src.read(name, rows=rows), want, err_msg=str(rows))
        np.testing.assert_array_equal(self.src.tensors[name].read(rows=(1, 2)), full[1:2])
        with self.assertRaises(ValueError):
            self.src.read(name, rows=slice(0, 10, 2))
        with self.assertRaises(IndexError):
            self.src.read(name, rows=317)

    def test_read_into_a_given_array(self):
        name = "model.embed_tokens.weight"
        buf = np.zeros((4, 64), dtype=np.uint16)
        self.assertIs(self.src.read(name, rows=(10, 14), out=buf), buf)
        np.testing.assert_array_equal(buf, self.src.read(name)[10:14])
        for bad in (np.zeros((4, 64), dtype=np.float32), np.zeros((5, 64), dtype=np.uint16),
                    np.zeros((64, 4), dtype=np.uint16).T):
            with self.assertRaises(ValueError):
                self.src.read(name, rows=(10, 14), out=bad)

    def test_metadata_and_files(self):
        self.assertEqual(self.src.metadata, {"format": "pt"})
        names = [os.path.basename(p) for p, _ in self.src.files]
        self.assertIn("model-00001-of-00002.safetensors", names)
        for path, size in self.src.files:
            self.assertEqual(size, os.path.getsize(path))

    def test_threads_read_one_source_at_once(self):
        # ckpt.h: an open source may be read from any number of threads (ctypes drops the GIL in calls)
        import concurrent.futures
        names = list(self.want) * 8
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda n: raw(self.src.read(n)), names))
        self.assertEqual(got, [self.want[n][2] for n in names])

    def test_open_events_and_cancel(self):
        seen = []
        with libckpt.open(data("sample"), on_event=lambda kind, name, done: seen.append((kind, name, done))):
            pass
        tensors = [name for kind, name, _ in seen if kind == "tensor"]
        self.assertEqual(sorted(tensors), sorted(self.want))
        self.assertTrue(any(kind == "file" for kind, _, _ in seen))
        with self.assertRaises(libckpt.CancelledError):
            libckpt.open(data("sample"), on_event=lambda kind, name, done: kind == "tensor")

    def test_unknown_tensor_is_a_key_error(self):
        with self.assertRaises(KeyError):
            self.src.read("no.such.tensor")


class TorchTest(unittest.TestCase):
    """torch.save files (zip, legacy, views, big-endian) against the FNV-1a of the bytes torch gave."""

    def test_every_fixture_tensor_is_torchs(self):
        with open(data("torch", "golden.json")) as f:
            golden = json.load(f)["fixtures"]
        for fixture, tensors in golden.items():
            with libckpt.open(data("torch", fixture)) as src:
                for name, g in tensors.items():
                    t = src.tensors[name]
                    if "alias_of" in g:
                        self.assertEqual(t.alias_of, g["alias_of"], f"{fixture} {name}")
                        continue
                    self.assertEqual((t.dtype, list(t.shape)), (g["dtype"], g["shape"]), f"{fixture} {name}")
                    self.assertEqual(fnv1a64(raw(src.read(name))), g["fnv"], f"{fixture} {name}")

    def test_objects_beside_tensors(self):
        with libckpt.open(data("torch", "training.pt")) as src:
            self.assertTrue(src.objects)
            for kind, value in src.objects.values():
                self.assertIn(kind, ("none", "bool", "int", "float", "string", "bytes", "opaque"))
                self.assertIsInstance(value, str)

    @unittest.skipUnless(os.path.isdir(EXTERNAL), "no ../shared/external")
    def test_real_files_written_by_other_projects(self):
        with open(data("torch", "golden.json")) as f:
            golden = json.load(f)["external"]
        for fixture, tensors in golden.items():
            with libckpt.open(os.path.join(EXTERNAL, fixture)) as src:
                for name, g in tensors.items():
                    if "alias_of" not in g:
                        self.assertEqual(fnv1a64(raw(src.read(name))), g["fnv"], f"{fixture} {name}")


class DcpTest(unittest.TestCase):
    def test_chunks_join_into_the_golden_tensors(self):
        want, _ = read_safetensors(data("dcp", "golden.safetensors"))
        with libckpt.open(data("dcp", "new")) as src:
            self.assertEqual(src.format, "dcp")
            self.assertEqual(sorted(src.tensors), sorted(want))
            for name, (dtype, shape, blob) in want.items():
                a = src.read(name)
                self.assertEqual((src.tensors[name].dtype, a.shape), (dtype, shape), name)
                self.assertEqual(raw(a), blob, name)
                self.assertEqual(a.view(RAW[dtype]).dtype.itemsize, np.dtype(RAW[dtype]).itemsize)


class ErrorTest(unittest.TestCase):
    def test_missing_path(self):
        with self.assertRaises(libckpt.NotFoundError) as cm:
            libckpt.open(data("no-such-checkpoint"))
        e = cm.exception
        self.assertEqual((e.status, e.status_name), (5, "not found"))
        self.assertIn("no-such-checkpoint", e.message)
        self.assertIsInstance(e, libckpt.Error)

    def test_hostile_input_is_refused_at_open_naming_the_file(self):
        # testdata/hostile/: bombs, escapes and lies, each refused by the C tests too (tests/hostile.sh)
        kinds = (libckpt.FormatError, libckpt.LimitError)
        for name in sorted(os.listdir(data("hostile"))):
            if name.endswith(".py"):
                continue
            with self.subTest(name):
                with self.assertRaises(kinds) as cm:
                    libckpt.open(data("hostile", name))
                self.assertIn(name, cm.exception.message)
                self.assertNotIn("\n", cm.exception.message)

    def test_limits_are_keywords(self):
        with self.assertRaises(libckpt.LimitError):
            libckpt.open(data("sample"), max_tensors=20)
        with self.assertRaises(TypeError):
            libckpt.open(data("sample"), max_everything=1)

    def test_read_after_close(self):
        src = libckpt.open(data("sample"))
        src.close()
        with self.assertRaises(ValueError):
            src.read("lm_head.weight")


if __name__ == "__main__":
    unittest.main()
