"""The platform's own cost per step, measured where it is nearly all there is: tiny nets.

With the paper's nets a CPU step takes seconds, and what the platform adds to it
(Lightning's loop and hooks, the NaN guard, logging) is far below the window-to-window
noise of a shared machine (about 10%), which side-by-side ratios cannot resolve.
With nets of a few MFLOP a step is mostly that overhead: the platform's median step
time minus the plain loop's, same run, same interleaving (:mod:`.train_bench`), is
what the platform adds per step. Added to the plain loop's measured paper-scale step
time it gives the platform/plain ratio the overhead alone allows there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from simgan.bench.settings import BenchSettings
from simgan.bench.train_bench import NETWORKS, bench_training

TINY = dict(batch=4, height=16, width_px=24, width=4, blocks=1, history_size=64, steps=40, warmup=2, repeats=5,
            variants=("eager",))


def _ms_per_step(entry: dict, network: str, batch: int) -> float:
    return 1e3 * batch / entry[f"{network}_images_per_s"]


def bench_overhead(s: BenchSettings, device: torch.device, workdir: Path) -> dict:
    """Per-step milliseconds of both loops with tiny nets, and the platform's difference."""
    tiny = dataclasses.replace(s, **TINY)
    eager = bench_training(tiny, device, workdir, log=lambda *_: None)["variants"]["eager"]
    out = {"setting": {k: v for k, v in TINY.items() if k != "variants"}}
    for impl in ("plain", "platform"):
        out[f"{impl}_ms_per_step"] = {n: _ms_per_step(eager[impl], n, tiny.batch) for n in NETWORKS}
    out["added_ms_per_step"] = {n: out["platform_ms_per_step"][n] - out["plain_ms_per_step"][n] for n in NETWORKS}
    return out


def implied_ratio(overhead: dict, plain_eager: dict, batch: int) -> dict[str, float]:
    """platform/plain at the benchmark's own nets if the platform cost only its tiny-net overhead."""
    out = {}
    for n in NETWORKS:
        step_ms = _ms_per_step(plain_eager, n, batch)
        out[n] = step_ms / (step_ms + max(overhead["added_ms_per_step"][n], 0.0))
    return out
