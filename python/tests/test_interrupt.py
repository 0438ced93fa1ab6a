"""Ctrl-C (SIGINT, a notebook's interrupt) during a long call: the run stops, nothing is left."""
import os
import shutil
import signal
import tempfile
import threading
import unittest

import libckpt
from libckpt import _checks
from fixtures import data


class InterruptTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        # the runs made in this test, to wait until the main thread has seen the signal
        self.runs = []
        original = _checks._Callbacks.__init__

        def record(cb):
            original(cb)
            self.runs.append(cb)
        self.patch = (original, record)
        _checks._Callbacks.__init__ = record

    def tearDown(self):
        _checks._Callbacks.__init__ = self.patch[0]
        shutil.rmtree(self.tmp)

    def interrupting(self):
        """A progress callback that presses Ctrl-C once and waits until the main thread has handled it."""
        sent = []

        def progress(*args):
            if not sent:
                sent.append(True)
                os.kill(os.getpid(), signal.SIGINT)
                self.assertTrue(self.runs[-1].interrupted.wait(30), "the main thread never saw SIGINT")
            return False
        return progress

    @unittest.skipUnless(threading.current_thread() is threading.main_thread(), "signals reach the main thread")
    def test_ctrl_c_cancels_convert_and_leaves_nothing(self):
        out = os.path.join(self.tmp, "out")
        with self.assertRaises(KeyboardInterrupt):
            libckpt.convert(data("sample"), out, target="nd", jobs=1, progress=self.interrupting())
        self.assertEqual(os.listdir(self.tmp), [])

    @unittest.skipUnless(threading.current_thread() is threading.main_thread(), "signals reach the main thread")
    def test_ctrl_c_stops_verify_and_diff(self):
        out = os.path.join(self.tmp, "out")
        libckpt.convert(data("sample"), out, target="nd")
        with self.assertRaises(KeyboardInterrupt):
            libckpt.verify(out, against=data("sample"), jobs=1, progress=self.interrupting())
        with self.assertRaises(KeyboardInterrupt):
            libckpt.diff(data("sample"), out, progress=self.interrupting())
        self.assertTrue(libckpt.verify(out))   # the library is usable again afterwards


if __name__ == "__main__":
    unittest.main()
