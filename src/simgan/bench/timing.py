"""Step clocks, peak step memory, and medians.

A step's time is the gap between its start and the next step's start, so everything a
loop does per step counts (fetching the batch, the step, logging, callbacks), not just
the maths; the first ``skip`` steps of a window (start-up, compilation, allocator
growth) are left out. Each step gets two clocks: wall time (what a user waits) and
this process's CPU time (all its threads), which other processes on a shared machine
disturb less: a loop that costs more per step costs more CPU time whether or not the
scheduler lets it run. On a GPU the wall clock is CUDA events recorded at each tick
and read after the window: no synchronization per step, which would hide what a loop
costs by syncing (the GPU idles while the host catches up, and that idle time is in
the gap between events).

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


CLOCKS = ("wall", "cpu")


class StepClock:
    """``tick(network)`` at every step start; ``times[clock][network]``: the timed steps' seconds."""

    def __init__(self, skip: int, device: torch.device):
        self.skip, self.device = int(skip), device
        self.startup_s: float | None = None  # wall time from the clock's creation to the end of the skipped steps
        self.n = 0
        self._cuda = device.type == "cuda"
        self._created = time.perf_counter()
        self._ticks: list[tuple[str, object, float]] = []  # (network, wall mark, CPU seconds)

    def tick(self, network: str) -> None:
        if self.n == self.skip:  # one sync, before the timed steps: start-up ends when its work is done
            synchronize(self.device)
            self.startup_s = time.perf_counter() - self._created
        if self.n >= self.skip:
            if self._cuda:
                mark = torch.cuda.Event(enable_timing=True)
                mark.record()
            else:
                mark = time.perf_counter()
            self._ticks.append((network, mark, time.process_time()))
        self.n += 1

    @property
    def times(self) -> dict[str, dict[str, list[float]]]:
        synchronize(self.device)
        out: dict[str, dict[str, list[float]]] = {clock: {} for clock in CLOCKS}
        for (network, wall0, cpu0), (_, wall1, cpu1) in zip(self._ticks, self._ticks[1:]):
            wall = wall0.elapsed_time(wall1) / 1e3 if self._cuda else wall1 - wall0
            out["wall"].setdefault(network, []).append(wall)
            out["cpu"].setdefault(network, []).append(cpu1 - cpu0)
        return out


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
