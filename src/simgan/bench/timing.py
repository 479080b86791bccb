"""Step clocks, peak step memory, and medians.

A step's time is the gap between its start and the next step's start, so everything a
loop does per step counts (fetching the batch, the step, logging, callbacks), not just
the maths; the first ``skip`` steps of a window (start-up, compilation, allocator
growth) are left out. On a GPU the clock synchronizes at each tick, in both loops
alike, so a step's time is its kernels' time. Each step gets two clocks: wall time
(what a user waits) and this process's CPU time (all its threads), which other
processes on a shared machine disturb much less: a loop that costs more per step
costs more CPU time whether or not the scheduler lets it run.

Peak memory is that of one step, measured on its own (never in a timed step): on CUDA
``max_memory_allocated`` above what was allocated before it; on CPU, where torch keeps
no allocator statistics, the profiler's allocation records (``profile_memory=True``)
summed in time order, their running maximum being the step's peak above its start.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class StepClock:
    """``tick(network)`` at every step start; ``times[clock][network]``: the timed steps' seconds."""

    def __init__(self, skip: int, device: torch.device):
        self.skip, self.device = int(skip), device
        self.times: dict[str, dict[str, list[float]]] = {clock: {} for clock in CLOCKS}
        self.startup_s: float | None = None  # wall time from the clock's creation to the end of the skipped steps
        self.n = 0
        self._created = time.perf_counter()
        self._last: tuple[dict[str, float], str] | None = None

    def tick(self, network: str) -> None:
        synchronize(self.device)
        now = {clock: read() for clock, read in CLOCKS.items()}
        if self._last is not None and self.n - 1 >= self.skip:
            for clock, value in now.items():
                self.times[clock].setdefault(self._last[1], []).append(value - self._last[0][clock])
        if self.n == self.skip:
            self.startup_s = now["wall"] - self._created
        self._last = (now, network)
        self.n += 1


@contextlib.contextmanager
def _quiet_stderr():
    """Silences the C++ profiler's start/stop lines on fd 2 (Python's own warnings too)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MemoryProbe:
    """Peak memory of what runs between ``start()`` and ``stop()``, in MiB above the start."""

    def __init__(self, device: torch.device):
        self.device = device
        self._prof = None

    def start(self) -> None:
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            # Quiet for the whole probed step: the profiler also warns about blocks it
            # saw freed but not allocated (those from before it started).
            self._quiet = _quiet_stderr()
            self._quiet.__enter__()
            self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self._prof.__enter__()

    def stop(self) -> float:
        synchronize(self.device)
        if self.device.type == "cuda":
            return (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        prof, self._prof = self._prof, None
        try:
            prof.__exit__(None, None, None)
        finally:
            self._quiet.__exit__(None, None, None)
        # "[memory]" records are frees/allocations outside any op; an op's own net
        # allocation is its self_cpu_memory_usage (children excluded: no double count).
        deltas = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                        for e in prof.events())
        current = peak = 0
        for _, delta in deltas:
            current += delta
            peak = max(peak, current)
        return peak / 2**20


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
