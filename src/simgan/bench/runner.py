"""One benchmark run, top to bottom: FLOPs, training loops, data pipeline, refine export, report."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
import torch._dynamo

from simgan.bench import ceiling as conv_ceiling
from simgan.bench import report
from simgan.bench.flops import step_flops
from simgan.bench.machine import describe
from simgan.bench.overhead import bench_overhead, implied_ratio
from simgan.bench.pipeline import bench_pipeline
from simgan.bench.refine_export import bench_export
from simgan.bench.scale import run_scale
from simgan.bench.settings import BenchSettings
from simgan.bench.train_bench import bench_training


def _prepare_torch(s: BenchSettings) -> torch.device:
    if s.threads:
        torch.set_num_threads(s.threads)
    # Every variant compiles the same forward again (layout, dtype, grad mode, loop):
    # past dynamo's default limit of 8 it would silently fall back to eager.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    device = torch.device(s.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the platform's Trainer gets benchmark=True too
    return device


def _training_steps_per_s(train: dict) -> tuple[float, str]:
    """Steps/s of the fastest measured training (one refiner + one discriminator step per cycle)."""
    best = train["best"]
    e = train["variants"][best]["platform"]
    batch = train["batch"]
    cycle_s = batch / e["refiner_images_per_s"] + batch / e["discriminator_images_per_s"]
    return 2 / cycle_s, f"{best}, platform, one refiner + one discriminator step"


def _without_slow_bf16(s: BenchSettings, ceiling: dict) -> tuple[BenchSettings, dict[str, str]]:
    """Leaves out the bf16 variants where bf16 convolutions run at under half the fp32 rate.

    Without native bf16 (AVX2 CPUs) oneDNN converts and computes in fp32, ~14x slower (the main convolution):
    one timed window would take many minutes and could only confirm what the ceiling
    already measured.
    """
    variants = s.parsed_variants()
    if not any(v.bf16 for v in variants):
        return s, {}
    fp32, bf16 = conv_ceiling.best_rate(ceiling, "fp32"), conv_ceiling.best_rate(ceiling, "bf16")
    if bf16 >= 0.5 * fp32:
        return s, {}
    reason = (f"bf16 convolutions run at {bf16:.1f} GFLOP/s here against {fp32:.1f} in fp32 (no native bf16 on "
              "this device), so a bf16 step would be many times slower; left out, not timed")
    left_out = {v.name: reason for v in variants if v.bf16}
    kept = tuple(v.name for v in variants if not v.bf16)
    return dataclasses.replace(s, variants=kept), left_out


def run_benchmark(s: BenchSettings, command: str = "python -m simgan.bench", log=print) -> dict:
    device = _prepare_torch(s)
    started = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(s.out or Path("logs") / "bench" / started)
    results = {"started": started, "command": command, "settings": s.as_dict(), "machine": describe(device)}
    log(f"simgan benchmark -> {out}  ({results['machine']['cpu']}, {results['machine']['torch_threads']} threads)")
    results["flops"] = step_flops(s)
    log("ceiling (the refiner's main convolution alone):")
    dtypes = ("fp32", "bf16") if any(v.bf16 for v in s.parsed_variants()) else ("fp32",)
    results["ceiling"] = conv_ceiling.measure_ceiling(s, device, dtypes)
    log(f"  best forward+backward {conv_ceiling.best_rate(results['ceiling']):.1f} GFLOP/s")
    s, left_out = _without_slow_bf16(s, results["ceiling"])
    for name, reason in left_out.items():
        log(f"  {name} left out: {reason}")
    with tempfile.TemporaryDirectory(prefix="simgan-bench-") as tmp:
        tmp = Path(tmp)
        if "train" in s.parts:
            log("training steps (plain loop vs platform):")
            results["train"] = bench_training(s, device, tmp / "lightning", log=log)
            results["train"]["batch"] = s.batch
            results["train"]["left_out"] = left_out
        if "overhead" in s.parts:
            log("platform overhead per step (tiny nets):")
            overhead = bench_overhead(s, device, tmp / "overhead")
            if "train" in results:
                overhead["implied_platform_vs_plain"] = implied_ratio(
                    overhead, results["train"]["variants"]["eager"]["plain"], s.batch)
            results["overhead"] = overhead
            log("  added " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in overhead["added_ms_per_step"].items())
                + " per step")
        if "pipeline" in s.parts:
            log("data pipeline:")
            runs = []
            for workers in dict.fromkeys((s.pipeline_workers, 0)):
                (tmp / f"stores{workers}").mkdir()
                runs.append(bench_pipeline(s, tmp / f"stores{workers}", workers))
                log(f"  {workers} workers: {runs[-1]['batches_per_s']:.1f} batches/s")
            pipe = {"runs": runs, "workers_for_target": s.pipeline_workers}
            if "train" in results:
                pipe["training_steps_per_s"], pipe["training_from"] = _training_steps_per_s(results["train"])
                pipe["vs_training"] = runs[0]["batches_per_s"] / pipe["training_steps_per_s"]
            results["pipeline"] = pipe
        if "refine" in s.parts:
            log(f"refine export vs bare forward ({s.batch * s.refine_batches} images, batch {s.batch}, "
                f"refiner {s.blocks} blocks of {s.width}):")
            (tmp / "refine").mkdir()
            refine = results["refine"] = bench_export(s, tmp / "refine")
            log(f"  ratio {refine['ratio']:.3f} (best export / best bare), paired median "
                f"{refine['paired_ratio_median']:.3f}, CPU time {refine['cpu_ratio']:.3f}")
        if "scale" in s.parts:
            log(f"data at scale ({'quick' if s.scale_quick else 'paper scale'}: stores written in {tmp}):")
            results["scale"] = run_scale(quick=s.scale_quick, root=tmp, sizes=s.scale_sizes,
                                         progress=lambda message: log(f"  {message}"))
    eager = results.get("train", {}).get("variants", {}).get("eager", {}).get("plain", {})
    results["ceiling"]["summary"] = conv_ceiling.summarize(results["ceiling"], results["flops"]["refiner_step"],
                                                           eager.get("refiner_images_per_s"))
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = report.targets(results)
    json_path, md_path = report.write(results, out)
    results["paths"] = {"json": str(json_path), "markdown": str(md_path)}
    log("")
    log(report.markdown(results))
    log(f"wrote {json_path} and {md_path}")
    return results
