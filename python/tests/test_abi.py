"""The binding's view of the C structs against the library it loaded."""
import ctypes
import unittest

import libckpt
from libckpt import _lib


class AbiTest(unittest.TestCase):
    def test_option_mirrors_are_the_library_structs_or_their_older_prefix(self):
        # each _default() writes its struct's size: the mirror must not be larger (a field the library
        # lacks), and equal while this binding is current with the header (a missed field otherwise)
        for fn, mirror in ((_lib.lib.ckpt_open_options_default, _lib.OpenOptions),
                           (_lib.lib.ckpt_convert_options_default, _lib.ConvertOptions),
                           (_lib.lib.ckpt_verify_options_default, _lib.VerifyOptions),
                           (_lib.lib.ckpt_diff_options_default, _lib.DiffOptions),
                           (_lib.lib.ckpt_sums_options_default, _lib.SumsOptions),
                           (_lib.lib.ckpt_manifest_options_default, _lib.ManifestOptions)):
            with self.subTest(mirror.__name__):
                view = _lib.options(fn, mirror)
                self.assertEqual(view.size, ctypes.sizeof(mirror))

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
