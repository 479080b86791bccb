"""glibc's heap, told to keep what a forward pass frees for the next batch (Linux only).

By default glibc serves allocations above a moving threshold (128 KiB to start) with
fresh ``mmap`` pages and hands freed memory at the top of the heap back to the OS, so a
refiner's activations (megabytes per layer and batch) are page-faulted in again on every
batch. On the project's 2-core CPU that made a slim refiner's forward pass 2.6x slower
(more system time than user time), inside the export and out; a CPU training run of the
shipped eye recipe (170 steps, one thread) took 39-43 s with glibc's default and 33 s
with this, side by side (system time 6-9 s against 0.7 s). Training and refine both set it. Fixed thresholds keep
those blocks in the heap: memory stays bounded by one batch's activations, never by the
store. Elsewhere (another C library, another OS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks under it come from the heap
TRIM_THRESHOLD = 256 << 20  # free memory kept at the top of the heap


def keep_freed_memory() -> bool:
    """True when glibc took both settings (they hold for the whole process from then on)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no libc found, or one without mallopt (musl)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
