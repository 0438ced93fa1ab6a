"""libckpt.verify, diff, sums and manifest: findings as objects, against independent references
(numpy's casts for diff's errors, hashlib for SHA-256, the file system for the manifest)."""
import hashlib
import os
import shutil
import tempfile
import unittest

import numpy as np

import libckpt
from fixtures import bf16_bits_to_f16_bits, data, read_folder


class VerifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.f16 = os.path.join(cls.tmp, "f16")
        libckpt.convert(data("sample"), cls.f16, target="ascend-310p")
        cls.bf16 = os.path.join(cls.tmp, "bf16")
        libckpt.convert(data("sample"), cls.bf16, target="ascend-910b")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def copy(self, name):
        path = os.path.join(self.tmp, name)
        shutil.copytree(self.f16, path)
        return path

    def test_an_intact_folder_passes(self):
        seen = []
        report = libckpt.verify(self.f16, progress=lambda done, total: seen.append(done))
        self.assertTrue(report)
        self.assertEqual(report.failures, [])
        self.assertEqual(report.checks, len(report.findings))
        checks = {f.check for f in report.findings}
        self.assertTrue({"file", "header", "tensor"} <= checks, checks)
        self.assertTrue(seen)

    def test_against_the_source_proves_every_tensor(self):
        report = libckpt.verify(self.f16, against=data("sample"))
        self.assertTrue(report)
        fidelity = [f for f in report.findings if f.check == "fidelity"]
        self.assertEqual(len(fidelity), 21)
        self.assertTrue(all(f.mismatched == 0 for f in fidelity))

    def test_against_proves_the_conversion_given(self):
        report = libckpt.verify(self.f16, against=data("sample"), convert={"target": "ascend-310p"})
        self.assertTrue(report)
        options = {f.option: (f.value, f.origin) for f in report.findings if f.check == "option"}
        self.assertEqual(options["target"], ("ascend-310p", "options"))
        wrong = libckpt.verify(self.f16, against=data("sample"), convert={"target": "ascend-910b"})
        self.assertFalse(wrong)
        self.assertIn(("option", "target"), {(f.check, f.option) for f in wrong.failures})
        with self.assertRaises(ValueError):
            libckpt.verify(self.f16, convert={"target": "nd"})

    def test_a_changed_byte_fails_naming_file_and_tensor(self):
        bad = self.copy("bad")
        shard = os.path.join(bad, "model-00001-of-00001.safetensors")
        with open(shard, "r+b") as f:
            f.seek(os.path.getsize(shard) - 3)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
        report = libckpt.verify(bad)
        self.assertFalse(report)
        failed = {(f.check, f.file, f.tensor) for f in report.failures}
        self.assertIn(("file", "model-00001-of-00001.safetensors", None), failed)
        self.assertIn(("tensor", "model-00001-of-00001.safetensors", "lm_head.weight"), failed)

    def test_a_folder_without_manifest_raises(self):
        with self.assertRaises(libckpt.NotFoundError) as cm:
            libckpt.verify(data("sample"))
        self.assertIn("ckpt-manifest.json", cm.exception.message)

    def test_cancel(self):
        with self.assertRaises(libckpt.CancelledError):
            libckpt.verify(self.f16, progress=lambda done, total: True)

    def test_diff_errors_are_numpys(self):
        report = libckpt.diff(data("sample"), self.f16)
        source = read_folder(data("sample"))
        by_tensor = {f.tensor: f for f in report.findings if f.check == "diff"}
        self.assertEqual(sorted(by_tensor), sorted(source))
        for name, (dtype, _, blob) in source.items():
            bits = np.frombuffer(blob, dtype="<u2")
            a = libckpt.bf16_to_float32(bits).astype(np.float64)
            b = bf16_bits_to_f16_bits(bits).view(np.float16).astype(np.float64)
            want = float(np.max(np.abs(a - b))) if a.size else 0.0
            f = by_tensor[name]
            self.assertEqual(f.max_abs_error, want, name)
            self.assertFalse(f.ok, name)   # the element type changed: a difference whatever the values
            self.assertIn("BF16 -> F16", f.message)
        self.assertFalse(report)

    def test_diff_of_equal_checkpoints_and_names_only(self):
        report = libckpt.diff(data("sample"), self.bf16)
        self.assertTrue(report)
        self.assertTrue(all(f.max_abs_error == 0.0 for f in report.findings))
        self.assertTrue(libckpt.diff(data("sample"), self.bf16, names_only=True))
        self.assertFalse(libckpt.diff(data("sample"), self.f16, names_only=True))
        done = []
        libckpt.diff(data("sample"), self.bf16, progress=lambda d, t: done.append((d, t)))
        self.assertEqual(done[-1][0], done[-1][1])
        with self.assertRaises(libckpt.CancelledError):
            libckpt.diff(data("sample"), self.bf16, progress=lambda d, t: True)


class SumsTest(unittest.TestCase):
    def test_sha256_is_hashlibs(self):
        got = libckpt.sums(data("sample"), format="sha256")
        names = sorted(n for n in os.listdir(data("sample")) if not n.startswith("."))
        self.assertEqual([p for p, _ in got], names)
        for path, digest in got:
            with open(data("sample", path), "rb") as f:
                self.assertEqual(digest, hashlib.sha256(f.read()).hexdigest(), path)
        self.assertTrue(all(len(d) == 32 for _, d in libckpt.sums(data("sample"))))

    def test_verify_against_a_hashlib_list(self):
        tmp = tempfile.mkdtemp()
        try:
            copy = os.path.join(tmp, "copy")
            shutil.copytree(data("sample"), copy)
            listing = os.path.join(tmp, "SHA256SUMS")
            with open(listing, "w") as out:
                for name in sorted(os.listdir(copy)):
                    with open(os.path.join(copy, name), "rb") as f:
                        out.write(f"{hashlib.sha256(f.read()).hexdigest()}  {name}\n")
            self.assertTrue(libckpt.verify(copy, sums=listing))
            with open(os.path.join(copy, "config.json"), "a") as f:
                f.write(" ")
            report = libckpt.verify(copy, sums=listing)
            self.assertEqual([(f.file, f.ok) for f in report.failures], [("config.json", False)])
            os.remove(os.path.join(copy, "generation_config.json"))
            self.assertEqual([f.file for f in libckpt.verify(copy, sums=listing, ignore_missing=True).failures],
                             ["config.json"])
            with open(listing, "a") as out:
                out.write(f"{'0' * 64}  ../outside\n")
            with self.assertRaises(libckpt.FormatError) as cm:
                libckpt.verify(copy, sums=listing)
            self.assertIn("SHA256SUMS:6:", cm.exception.message)
        finally:
            shutil.rmtree(tmp)

    def test_manifest_of_a_source(self):
        m = libckpt.manifest(data("sample"))
        self.assertIsNone(m["target"])
        self.assertEqual({f["path"]: f["size"] for f in m["files"]},
                         {n: os.path.getsize(data("sample", n)) for n in os.listdir(data("sample"))})
        with libckpt.open(data("sample")) as src:
            self.assertEqual([t["name"] for t in m["tensors"]], list(src.tensors))


if __name__ == "__main__":
    unittest.main()
