"""glibc keeps freed activation memory for the next batch (training and refine set it).

Its effect is a speed one, measured side by side (``simgan/utils/heap.py`` gives the
figures), not here: this checks that glibc accepts the settings where it is the C library.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt's settings are glibc's")
def test_glibc_takes_the_settings_in_a_fresh_process_and_again():
    script = "from simgan.utils.heap import keep_freed_memory as k; print(k(), k())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]
