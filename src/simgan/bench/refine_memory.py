"""Peak memory of one refine export, in a fresh process: does it grow with the store?

A high-water mark cannot be reset, so each store is refined in a process of its own
(:mod:`.fresh_process`). Reported: the peak RSS (``VmHWM``) against
the RSS before refining, and the peak of Python/numpy allocations (``tracemalloc``).
A rank holds ~3 chunks of output (:mod:`simgan.export.writer`), so a store several times
larger, in chunks of the same size, should peak at the same memory.
"""

from __future__ import annotations

import tracemalloc

import torch
from omegaconf import DictConfig, OmegaConf

from simgan.bench.fresh_process import in_fresh_process, rss_mib
from simgan.bench.quiet import quiet


def _measure(cfg_yaml: str) -> dict:
    from simgan.export.refine import refine

    cfg = OmegaConf.create(cfg_yaml)
    before = rss_mib("VmRSS")
    tracemalloc.start()
    with quiet():
        summary = refine(cfg)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = rss_mib("VmHWM")
    return {"images": summary["count"], "rss_before_mib": before, "peak_rss_mib": peak,
            "peak_growth_mib": peak - before, "tracemalloc_peak_mib": traced_peak / 2**20}


def peak_memory(cfg: DictConfig) -> dict:
    """Refines ``cfg`` in a fresh process; its peak memory. Raises if that refine fails."""
    return in_fresh_process(_measure, OmegaConf.to_yaml(cfg), threads=torch.get_num_threads(),
                            what=f"the refine of {cfg.input}")
