"""The binding's view of the C structs against the library it loaded."""
import ctypes
import os
import re
import unittest

import libckpt
from libckpt import _lib


class AbiTest(unittest.TestCase):
    def test_option_mirrors_are_the_library_structs_or_their_older_prefix(self):
        # each _default() writes its struct's size.  A mirror larger than it names a field the library
        # lacks: a real break.  A smaller one is an older prefix, which works (fields it lacks keep their
        # defaults): reported as a skip, so that a struct's growth never fails anyone else's make check
        grown = []
        for fn, mirror in ((_lib.lib.ckpt_open_options_default, _lib.OpenOptions),
                           (_lib.lib.ckpt_convert_options_default, _lib.ConvertOptions),
                           (_lib.lib.ckpt_verify_options_default, _lib.VerifyOptions),
                           (_lib.lib.ckpt_diff_options_default, _lib.DiffOptions),
                           (_lib.lib.ckpt_sums_options_default, _lib.SumsOptions),
                           (_lib.lib.ckpt_manifest_options_default, _lib.ManifestOptions)):
            buf = ctypes.create_string_buffer(_lib.OPTION_BUFFER)
            fn(buf)
            size = ctypes.c_size_t.from_buffer(buf).value
            self.assertLessEqual(ctypes.sizeof(mirror), size, mirror.__name__)
            if size > ctypes.sizeof(mirror):
                grown.append(mirror.__name__)
        if grown:
            self.skipTest("ckpt.h grew " + ", ".join(grown) + ": mirror the new fields in python/libckpt/_lib.py")

    def test_findings_mirror_is_current(self):
        # ckpt_finding has no size field: its fields are counted from the header itself
        header = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "libckpt", "include", "ckpt.h")
        if not os.path.exists(header):
            self.skipTest("no ckpt.h beside the binding")
        with open(header) as f:
            body = re.search(r"typedef struct ckpt_finding \{(.*?)\} ckpt_finding;", f.read(), re.S).group(1)
        fields = re.findall(r"^\s+[\w ]+?[\s*]+(\w+);", body, re.M)
        mirrored = [n for n, _ in _lib.Finding._fields_]
        self.assertEqual(fields[:len(mirrored)], mirrored)   # the binding reads a prefix of the library's
        if len(fields) > len(mirrored):
            self.skipTest("ckpt_finding grew " + ", ".join(fields[len(mirrored):]) +
                          ": mirror them in python/libckpt/_lib.py")

    def test_limits_defaults_read_through_the_mirror(self):
        opts = _lib.options(_lib.lib.ckpt_open_options_default, _lib.OpenOptions)
        self.assertEqual(opts.limits.size, ctypes.sizeof(_lib.Limits))
        self.assertEqual((opts.limits.max_tensors, opts.limits.max_rank), (10_000_000, 64))

    def test_every_dtype_of_the_library_has_a_numpy_type_of_its_size(self):
        for code in range(1, 64):
            name = _lib.lib.ckpt_dtype_name(code).decode()
            if name == "INVALID":
                break
            with self.subTest(name):
                self.assertIn(name, libckpt.DTYPES)
                self.assertEqual(libckpt.DTYPES[name].itemsize, _lib.lib.ckpt_dtype_size(code))

    def test_versions(self):
        self.assertEqual(libckpt.library_version.split(".")[0], libckpt.__version__.split(".")[0])


if __name__ == "__main__":
    unittest.main()
