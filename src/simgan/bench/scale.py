"""The data layer at paper scale: stores larger than memory, streamed as fast as a GPU trains.

SimGAN's gaze experiment (paper Sec. 4.1) refines 1.2M synthetic UnityEyes images; the
hand experiment (Sec. 4.3) 224x224 depth maps. This section writes such stores on the
fly, in a temporary folder removed afterwards, and measures what training reads:

- ``eyes``: 1.2M 1x36x60 uint8 eyes, rendered by the project's simulator through
  :class:`~simgan.data.sources.RenderedStore` (block-wise, so rendering's peak RSS is
  reported too);
- ``depth``: 20,000 1x224x224 float32 depth crops (sensor-model hands from
  :func:`~simgan.data.simulators.depth_sensor.render_sensor_hands`: 64 rendered at
  224x224, shifted to make the rest, so they compress like renders);
- ``preloaded``: the first 20,000 eyes as their own store, read from memory, the rate a
  small store reaches.

Each store is read as training reads it: ``StoreDataset`` + ``DataLoader`` with the
chunk-aware :class:`~simgan.data.samplers.ChunkedBatchSampler` (batch 512, random
order), with 0, 1 and 2 workers, in a fresh process each (spawned: no pages inherited),
which reports images/s after a warm-up and its peak RSS (exact, ``VmHWM``) and the
peak of its RSS plus its workers' (sampled every 0.1 s, shared pages counted in each
process, so an upper bound). The full random permutation item by item (the order and
read path before chunk-aware reading) is timed on a few batches for comparison.

The GPU's need: one refiner step of the paper's gaze nets costs ~3.4 GFLOP per 35x55
image (counted by :func:`simgan.bench.flops.step_flops`), so a GPU sustaining 100-200
TFLOP/s in bf16 consumes ~30,000-60,000 images/s.

``python -m simgan.bench --parts scale`` (with ``--quick``: 60,000 eyes and 2,000 crops,
a check, not the paper-scale figures) runs :func:`run_scale` and :func:`scale_markdown`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from simgan.bench.fresh_process import in_fresh_process, rss_mib

BATCH = 512
FULL = {"eyes": 1_200_000, "crops": 20_000, "preloaded": 20_000, "eye_batches": 300, "depth_batches": 16}
QUICK = {"eyes": 60_000, "crops": 2_000, "preloaded": 20_000, "eye_batches": 60, "depth_batches": 4}
GPU_TFLOPS = (100.0, 200.0)
EYE_LABELS = ("gaze", "pupil")


def refiner_step_flop() -> float:
    """FLOPs of one refiner step per 35x55 image with the paper's gaze nets, as the benchmark counts them."""
    from simgan.bench.flops import step_flops
    from simgan.bench.settings import BenchSettings

    return step_flops(BenchSettings())["refiner_step"]


def gpu_need(flop_per_image: float) -> dict[str, float]:
    """Images/s a GPU at each of ``GPU_TFLOPS`` consumes in refiner steps."""
    return {f"{t:.0f}": t * 1e12 / flop_per_image for t in GPU_TFLOPS}


# ------------------------------------------------------------------ child processes
def _render_eyes(cache_dir: str, n: int) -> dict:
    """Renders ``n`` eyes as training does (RenderedStore, block-wise); seconds and peak RSS."""
    from simgan.data.sources import RenderedStore

    source = RenderedStore("simgan.data.simulators.eyes.render_eyes", n=n, height=36, width=60, seed=0,
                           cache_dir=cache_dir, name="eyes")
    start = time.perf_counter()
    path = source.prepare()
    return {"path": str(path), "seconds": time.perf_counter() - start, "peak_rss_mb": rss_mib("VmHWM"),
            "bytes": path.stat().st_size, "n": n}


def _write_depth(path: str, n: int) -> dict:
    """``n`` 224x224 float32 depth crops: 64 rendered sensor hands, shifted."""
    from simgan.data.simulators.depth_sensor import render_sensor_hands
    from simgan.data.store import StoreWriter

    base, _ = render_sensor_hands(64, 224, 224, seed=0)
    start = time.perf_counter()
    with StoreWriter(path, (1, 224, 224), np.float32, pixel_range=(-1.0, 1.0)) as writer:
        for k in range(0, n, 64):
            writer.append(np.roll(base, 7 * (k // 64), axis=3)[: n - k])
    return {"path": path, "seconds": time.perf_counter() - start, "peak_rss_mb": rss_mib("VmHWM"),
            "bytes": os.path.getsize(path), "n": n}


def _copy_prefix(src: str, dst: str, n: int) -> dict:
    from simgan.data.store import StoreDataset, write_store

    ds = StoreDataset(src, EYE_LABELS, preload=False)
    ds._open()
    write_store(dst, ds._images[:n], {k: ds._labels[k][:n] for k in EYE_LABELS})
    return {"path": dst, "n": n}


def _stream(path: str, labels: tuple[str, ...], workers: int, batches: int, order: str) -> dict:
    """Images/s and peak RSS reading ``path`` as training does (batch ``BATCH``).

    ``order``: ``chunked`` (ChunkedBatchSampler, streamed), ``preloaded`` (full
    permutation of a store read into memory) or ``random`` (full permutation, streamed,
    item by item: the read path without chunk-aware batching).
    """
    import torch
    from torch.utils.data import DataLoader

    from simgan.data.samplers import ChunkedBatchSampler, ResumableBatchSampler
    from simgan.data.store import StoreDataset

    torch.set_num_threads(1)
    ds = StoreDataset(path, labels, preload=order == "preloaded")
    if order == "chunked":
        sampler = ChunkedBatchSampler(len(ds), BATCH, 0, 0, chunks=ds.chunk_ids())
    else:
        sampler = ResumableBatchSampler(len(ds), BATCH, 0, 0)
    if order == "random":  # the per-item path: what DataLoader did before __getitems__
        ds.__getitems__ = None
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    pids = [os.getpid()] + [w.pid for w in getattr(it, "_workers", [])]
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], sum(rss_mib("VmRSS", p) for p in pids))

    sampler_thread = threading.Thread(target=sample, daemon=True)
    sampler_thread.start()
    for _ in range(2 + 2 * workers):  # warm-up: workers started, first chunks read
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - start
    done.set()
    sampler_thread.join()
    peak[0] = max(peak[0], sum(rss_mib("VmRSS", p) for p in pids))
    result = {"images_per_s": batches * BATCH / seconds, "reader_peak_rss_mb": rss_mib("VmHWM"),
              "total_peak_rss_mb": peak[0], "workers": workers, "batches": batches, "order": order}
    try:  # the numbers are in: a worker failing as it exits must not lose them
        if hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
    except RuntimeError as err:
        result["worker_exit_error"] = str(err)
    return result


# ------------------------------------------------------------------ the section
def run_scale(quick: bool = False, workers: tuple[int, ...] = (0, 1, 2), root: str | os.PathLike | None = None,
              sizes: dict | None = None, progress=print) -> dict:
    """Writes the stores in a temporary folder, streams them, removes them; returns the numbers.

    ``sizes`` overrides entries of ``QUICK`` / ``FULL`` (``eyes``, ``crops``,
    ``preloaded``, ``eye_batches``, ``depth_batches``).
    """
    size = {**(QUICK if quick else FULL), **(sizes or {})}
    tmp = Path(tempfile.mkdtemp(prefix="simgan-scale-", dir=root))
    out: dict = {"quick": bool(quick), "batch": BATCH, "sizes": size, "refiner_step_flop": refiner_step_flop(),
                 "cpu_count": os.cpu_count(), "load_before": os.getloadavg()}
    out["gpu_need_images_per_s"] = gpu_need(out["refiner_step_flop"])
    try:
        progress(f"scale: rendering {size['eyes']:,} eyes")
        render = in_fresh_process(_render_eyes, str(tmp), size["eyes"])
        out["render_eyes"] = {k: v for k, v in render.items() if k != "path"}
        progress(f"scale: writing {size['crops']:,} depth crops")
        depth = in_fresh_process(_write_depth, str(tmp / "depth.h5"), size["crops"])
        out["write_depth"] = {k: v for k, v in depth.items() if k != "path"}
        n_pre = min(size["preloaded"], size["eyes"])
        in_fresh_process(_copy_prefix, render["path"], str(tmp / "preloaded.h5"), n_pre)
        eye_b = min(size["eye_batches"], max(1, size["eyes"] // BATCH - 2 - 2 * max(workers)))
        depth_b = min(size["depth_batches"], max(1, size["crops"] // BATCH - 2 - 2 * max(workers)))
        runs = {"eyes": [], "depth": []}
        for w in workers:
            progress(f"scale: streaming with {w} worker(s)")
            runs["eyes"].append(in_fresh_process(_stream, render["path"], EYE_LABELS, w, eye_b, "chunked"))
            runs["depth"].append(in_fresh_process(_stream, str(tmp / "depth.h5"), (), w, depth_b, "chunked"))
        out["streamed"] = runs
        out["preloaded"] = in_fresh_process(_stream, str(tmp / "preloaded.h5"), EYE_LABELS, 0,
                                     min(size["eye_batches"], 30), "preloaded")
        out["random_item_by_item"] = {
            "eyes": in_fresh_process(_stream, render["path"], EYE_LABELS, 0, 4, "random"),
        }
        out["load_after"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def scale_markdown(result: dict) -> str:
    """The section as markdown: a table per store, then the GPU's need and rendering's memory."""
    s = result["sizes"]
    need = result["gpu_need_images_per_s"]
    lines = [
        f"## Data at scale{' (quick)' if result.get('quick') else ''}",
        "",
        f"Batch {result['batch']}, chunk-aware random order, {result['cpu_count']} CPU cores "
        f"(load average {result['load_before'][0]:.1f} before, {result.get('load_after', [float('nan')])[0]:.1f} "
        "after). RSS: reading process (exact peak) / with its workers (sampled, shared pages counted per process).",
        "",
        "| store | workers | images/s | peak RSS reader | peak RSS with workers |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"eyes": f"{s['eyes']:,} eyes 1x36x60 uint8, streamed", "depth": f"{s['crops']:,} crops 1x224x224 "
             "float32, streamed"}
    for store, runs in result["streamed"].items():
        for r in runs:
            lines.append(f"| {names[store]} | {r['workers']} | {r['images_per_s']:,.0f} | "
                         f"{r['reader_peak_rss_mb']:,.0f} MB | {r['total_peak_rss_mb']:,.0f} MB |")
    p = result["preloaded"]
    lines.append(f"| {min(s['preloaded'], s['eyes']):,} eyes, preloaded (full permutation) | 0 | "
                 f"{p['images_per_s']:,.0f} | {p['reader_peak_rss_mb']:,.0f} MB | {p['total_peak_rss_mb']:,.0f} MB |")
    r = result["random_item_by_item"]["eyes"]
    lines.append(f"| {s['eyes']:,} eyes, streamed, full permutation item by item (before) | 0 | "
                 f"{r['images_per_s']:,.0f} | {r['reader_peak_rss_mb']:,.0f} MB | {r['total_peak_rss_mb']:,.0f} MB |")
    render, depth = result["render_eyes"], result["write_depth"]
    lines += [
        "",
        f"GPU consumption: one refiner step ~{result['refiner_step_flop'] / 1e9:.1f} GFLOP per 35x55 image, so "
        + " / ".join(f"{k} TFLOP/s needs {v:,.0f} images/s" for k, v in need.items()) + ".",
        "",
        f"Rendering {render['n']:,} eyes (block-wise into the store): {render['seconds']:,.0f} s, "
        f"peak RSS {render['peak_rss_mb']:,.0f} MB, store {render['bytes'] / 2**20:,.0f} MB. "
        f"Writing {depth['n']:,} depth crops: {depth['seconds']:,.0f} s, store {depth['bytes'] / 2**20:,.0f} MB.",
    ]
    return "\n".join(lines) + "\n"
