"""Running one measurement in a fresh process, and reading a process's memory.

A high-water mark cannot be reset, and what a process has imported or allocated before
changes what the next measurement sees; so the memory figures of the benchmark (a
refine export per store size, rendering and streaming at scale) each come from a
process of their own, started with ``spawn`` (nothing inherited). The child's error,
with its traceback, is raised here: a measurement that fails fails the benchmark.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queues
import resource
import traceback
from typing import Any, Callable


def rss_mib(field: str = "VmRSS", pid: int | str = "self") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in MiB (0 for a process that is gone).

    Not ``getrusage``: its ru_maxrss survives exec, so a spawned child would report the
    parent's size at fork time.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0 if pid != "self" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux
    return 0.0


def _run(results, target: Callable[..., dict], args: tuple, threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
        results.put(target(*args))
    except BaseException:  # the parent raises it
        results.put({"error": traceback.format_exc()})


def in_fresh_process(target: Callable[..., dict], *args: Any, threads: int = 1, what: str = "") -> dict:
    """``target(*args)`` (a module-level function returning a dict) in a new spawned process.

    Raises RuntimeError naming ``what`` (default: the function) with the child's traceback
    when it raised, or its exit code when it died without a word (killed, out of memory).
    """
    what = what or target.__name__
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_run, args=(results, target, args, threads))
    child.start()
    while True:
        alive = child.is_alive()  # before the wait: a child that ended then has put what it will
        try:
            outcome = results.get(timeout=1.0)
            break
        except queues.Empty:
            if not alive:
                raise RuntimeError(f"{what} in a fresh process died (exit code {child.exitcode})") from None
    child.join()
    if "error" in outcome:
        raise RuntimeError(f"{what} in a fresh process failed:\n{outcome['error']}")
    return outcome
