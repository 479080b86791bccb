"""Refine export against the bare refiner forward, by the export package's own benchmark.

Calls :func:`simgan.export.bench.bench_refine` with this run's batch,
image size and refiner, rather than measuring it a second way. If that function is not
there (or will not take these arguments), the row is reported as not measured, with why.
"""

from __future__ import annotations

import contextlib
import inspect
import io

from simgan.bench.settings import BenchSettings


def bench_export(s: BenchSettings, workdir: str) -> dict:
    try:
        from simgan.export.bench import bench_refine
    except ImportError as err:
        return {"measured": False, "reason": f"simgan.export.bench.bench_refine not importable ({err})"}
    wanted = dict(batch_size=s.batch, batches=s.refine_batches, image_shape=s.image_shape, width=s.width,
                  blocks=s.blocks, accelerator="gpu" if s.device.startswith("cuda") else "cpu",
                  repeats=s.repeats, memory_scales=(), workdir=workdir)
    accepted = inspect.signature(bench_refine).parameters
    try:
        # its refine runs print a summary and a progress bar: keep this run's output readable
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = bench_refine(**{k: v for k, v in wanted.items() if k in accepted})
        speed = result["speed"]
        return {"measured": True, "bare_forward_images_per_s": speed["bare_forward_images_per_s"],
                "export_images_per_s": speed["export_images_per_s"], "ratio": speed["ratio"],
                "images": speed.get("images"), "runs": speed.get("runs"),
                "arguments": {k: (list(v) if isinstance(v, tuple) else v) for k, v in wanted.items()
                              if k in accepted and k != "workdir"}}
    except Exception as err:  # another engineer's code, still changing: report, don't crash the run
        return {"measured": False, "reason": f"bench_refine failed: {type(err).__name__}: {err}"}
