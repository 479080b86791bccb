"""Refine-export benchmark: throughput vs the bare forward pass, peak memory vs store size.

The target: refining a store should run at >= 0.9x the bare refiner forward pass
at the same batch size on the same machine, and peak memory should not grow with the
store. :func:`bench_refine` measures both and returns a dict (the project benchmark,
``python -m simgan.bench``, can call it):

- speed, in this process, side by side and alternating (best of ``repeats`` each, so
  load from other processes hits both alike): ``bare`` = ``refiner(x)`` over the same
  store's ``batches`` batches, already normalized and on the device (all the export
  adds is reading, normalizing, quantizing, compressing and writing); ``export`` = :func:`simgan.export.refine.refine`
  on a store of ``batches * batch_size`` images (100x the batch by default), end to end
  (reading, normalizing, refining, quantizing, compressing, chunk files, merge), and
  its predict loop alone;
- memory, each store size in a fresh process (a high-water mark cannot be reset):
  peak RSS (``VmHWM``) and the peak of Python/numpy allocations (``tracemalloc``)
  for stores of ``memory_scales`` x the speed store. A rank holds ~3 chunks, so
  ``chunk_size`` is small enough (1024) that even the smallest store reaches that bound.

    python -m simgan.export.bench                             # CPU: width-16 refiner, 36x60
    python -m simgan.export.bench --width 64 --blocks 4 --accelerator gpu --batch-size 512
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from simgan.data.store import StoreWriter


def _refiner_config(channels: int, width: int, blocks: int) -> dict:
    return {"_target_": "simgan.models.refiner.Refiner", "channels": channels, "width": width, "num_blocks": blocks}


def make_checkpoint(path: Path, refiner: dict, image_shape: tuple[int, int, int], seed: int = 0) -> Path:
    """A checkpoint in the layout :func:`~simgan.export.checkpoint.load_refiner` reads."""
    torch.manual_seed(seed)
    net = instantiate(refiner)
    torch.save({"hyper_parameters": {"refiner": refiner, "image_shape": list(image_shape)},
                "state_dict": {f"refiner.{k}": v for k, v in net.state_dict().items()}, "global_step": 0}, path)
    return path


def make_store(path: Path, n: int, image_shape: tuple[int, int, int], seed: int = 0, block: int = 4096) -> Path:
    """Smooth-ish uint8 images (blocky low-res noise plus grain: compresses like renders do)."""
    rng = np.random.default_rng(seed)
    c, h, w = image_shape
    with StoreWriter(path, image_shape, np.uint8, {"gaze": ((2,), "float32")}, overwrite=True) as writer:
        for start in range(0, n, block):
            m = min(block, n - start)
            coarse = rng.integers(40, 216, size=(m, c, -(-h // 6), -(-w // 6)))
            images = coarse.repeat(6, axis=2).repeat(6, axis=3)[:, :, :h, :w] + rng.integers(-8, 9, size=(m, c, h, w))
            writer.append(images.clip(0, 255).astype(np.uint8), {"gaze": rng.normal(size=(m, 2)).astype(np.float32)})
    return path


def _refine_config(ckpt: Path, store: Path, output: Path, accelerator: str, batch_size: int, num_workers: int,
                   writer_threads: int | None, level: int, chunk_size: int = 1024):
    return OmegaConf.create({
        "ckpt_path": str(ckpt), "input": str(store), "output": str(output), "overwrite": True, "resume": False,
        "allow_size_mismatch": False, "batch_size": batch_size, "num_workers": num_workers, "chunk_size": chunk_size,
        "writer_threads": writer_threads, "compile": False, "contact_sheet": 0, "throttle_s": 0.0,
        "compression_level": level,
        "trainer": {"_target_": "lightning.pytorch.Trainer", "accelerator": accelerator, "devices": 1,
                    "precision": "32-true", "default_root_dir": str(output.parent)},
    })


def _bare_forward(ckpt: Path, store: Path, batch_size: int, batches: int, device: torch.device) -> tuple[float, float]:
    """(wall s, CPU s) of ``refiner(x)`` over the store's images, already normalized and on the device.

    Distinct batches, not one batch again and again: a repeated batch stays in the CPU
    caches and flatters the baseline by ~30% for small nets on CPU.
    """
    import h5py

    from simgan.export.checkpoint import load_refiner
    from simgan.export.predictor import RefinePredictor

    refiner, _ = load_refiner(ckpt, hash_file=False)
    refiner.to(device)
    with h5py.File(store, "r") as f:
        predictor = RefinePredictor(refiner, (0.0, 255.0), f["images"].dtype)
        xs = [predictor.normalize(torch.from_numpy(f["images"][i * batch_size:(i + 1) * batch_size]).to(device))
              for i in range(batches)]
    with torch.inference_mode():
        for x in xs[:2]:  # warm-up (allocator, kernels)
            refiner(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started, cpu = time.perf_counter(), time.process_time()
        for x in xs:
            refiner(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - started, time.process_time() - cpu


def _breakdown(ckpt: Path, store: Path, batch_size: int, level: int, device: torch.device, rounds: int = 5,
               batches: int = 10) -> dict:
    """CPU ms per batch of each step of the export, alternating, median of ``rounds``.

    Thread CPU time, unlike wall time, hardly moves with other processes' load: this
    says what the export costs beyond the forward pass, whatever the machine is doing.
    """
    import h5py

    from simgan.export.checkpoint import load_refiner
    from simgan.export.codec import chunk_rows, encode
    from simgan.export.predictor import RefinePredictor

    refiner, _ = load_refiner(ckpt, hash_file=False)
    refiner.to(device)
    with h5py.File(store, "r") as f:
        meta_shape, dtype = f["images"].shape[1:], f["images"].dtype
        predictor = RefinePredictor(refiner, (0.0, 255.0), dtype).to(device)
        rows = chunk_rows(meta_shape, dtype)
        raw = torch.from_numpy(f["images"][:batch_size]).to(device)
        with torch.inference_mode():
            xs = [predictor.normalize(torch.from_numpy(f["images"][i * batch_size:(i + 1) * batch_size]).to(device))
                  for i in range(batches)]
            x = xs[0]
            y = refiner(x)
            q = predictor.quantize(y)
        host = q.cpu().numpy()
        buffer = np.empty_like(host)
        steps = {
            "forward": lambda i: refiner(xs[i]),
            "read": lambda i: f["images"][i * batch_size:(i + 1) * batch_size],
            "normalize": lambda i: predictor.normalize(raw),
            "quantize": lambda i: predictor.quantize(y),
            "to_host": lambda i: buffer.__setitem__(slice(None), q.cpu().numpy()),
            "compress": lambda i: [encode(host[a:a + rows], rows, level) for a in range(0, len(host), rows)],
        }
        timings: dict[str, list[float]] = {k: [] for k in steps}
        with torch.inference_mode():
            for _ in range(rounds):
                for name, step in steps.items():
                    started = time.thread_time()
                    for i in range(batches):
                        step(i)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    timings[name].append((time.thread_time() - started) / batches * 1e3)
    ms = {k: float(np.median(v)) for k, v in timings.items()}
    main_thread = ms["forward"] + ms["read"] + ms["normalize"] + ms["quantize"] + ms["to_host"]
    return {
        "cpu_ms_per_batch": ms,
        # compression runs in the writer's threads: free when a core is idle...
        "expected_ratio_with_a_free_core": ms["forward"] / main_thread,
        # ...and on the forward's core when none is (a saturated shared machine)
        "expected_ratio_no_free_core": ms["forward"] / (main_thread + ms["compress"]),
    }


def _quiet() -> None:
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("simgan").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


def _rss_mib(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` of this process image, in MiB.

    Not ``getrusage``: its ru_maxrss survives exec, so a spawned child would report the
    parent's size at fork time (the bench parent has just written the bigger store).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def _memory_child(cfg_yaml: str, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    _quiet()
    from simgan.export.refine import refine

    cfg = OmegaConf.create(cfg_yaml)
    before = _rss_mib("VmRSS")
    tracemalloc.start()
    with contextlib.redirect_stdout(io.StringIO()):
        summary = refine(cfg)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _rss_mib("VmHWM")
    queue.put({"images": summary["count"], "rss_before_mib": before, "peak_rss_mib": peak,
               "peak_growth_mib": peak - before, "tracemalloc_peak_mib": traced_peak / 2**20})


def bench_refine(
    batch_size: int = 64,
    batches: int = 100,
    image_shape: tuple[int, int, int] = (1, 36, 60),
    width: int = 16,
    blocks: int = 1,
    accelerator: str = "cpu",
    num_workers: int | None = None,
    writer_threads: int | None = None,
    compression_level: int = 4,
    chunk_size: int = 1024,
    repeats: int = 2,
    memory_scales: tuple[int, ...] = (1, 10),
    workdir: str | None = None,
) -> dict:
    """Refine-export throughput vs the bare forward pass, and peak memory per store size."""
    from simgan.export.refine import refine

    _quiet()
    image_shape = tuple(image_shape)
    device = torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")
    refiner = _refiner_config(image_shape[0], width, blocks)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        ckpt = make_checkpoint(root / "refiner.ckpt", refiner, image_shape)
        n = batches * batch_size
        store = make_store(root / "store.h5", n, image_shape)
        cfg = _refine_config(ckpt, store, root / "refined.h5", accelerator, batch_size, num_workers, writer_threads,
                             compression_level, chunk_size)
        with contextlib.redirect_stdout(io.StringIO()):  # warm-up: lazy imports, first-touch pages
            refine(cfg)
        bare, export, loop, bare_cpu, export_cpu = [], [], [], [], []
        for _ in range(repeats):  # alternate, so a burst of outside load hits both
            wall, cpu = _bare_forward(ckpt, store, batch_size, batches, device)
            bare.append(n / wall)
            bare_cpu.append(cpu / n)
            cpu = time.process_time()
            with contextlib.redirect_stdout(io.StringIO()):  # keep stdout for the JSON
                summary = refine(cfg)
            export_cpu.append((time.process_time() - cpu) / n)
            export.append(n / summary["seconds"])
            loop.append(summary["images_per_s"])
        paired = [e / b for e, b in zip(export, bare)]
        breakdown = _breakdown(ckpt, store, batch_size, compression_level, device)
        result = {
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(),
            "batch_size": batch_size,
            "num_workers": num_workers,
            "compression_level": compression_level,
            "chunk_size": chunk_size,
            "image_shape": list(image_shape),
            "refiner": refiner,
            "speed": {
                "images": n,
                "bare_forward_images_per_s": max(bare),
                "export_images_per_s": max(export),
                "export_predict_loop_images_per_s": max(loop),
                # best export / best bare: the acceptance number on a quiet machine
                "ratio": max(export) / max(bare),
                "predict_loop_ratio": max(loop) / max(bare),
                # on a shared machine: each export run against the bare run just before it
                "paired_ratio_median": float(np.median(paired)),
                # CPU seconds per image, all threads (compression included), bare / export:
                # the least load-sensitive figure on a shared CPU
                "cpu_ratio": float(np.median(bare_cpu) / np.median(export_cpu)),
                "runs": {"bare": bare, "export": export, "predict_loop": loop, "paired_ratio": paired,
                         "bare_cpu_s_per_image": bare_cpu, "export_cpu_s_per_image": export_cpu},
            },
            "breakdown": breakdown,
            "memory": [],
        }
        context = multiprocessing.get_context("spawn")
        for scale in memory_scales:
            big = make_store(root / f"store_x{scale}.h5", n * scale, image_shape, seed=scale)
            cfg_big = _refine_config(ckpt, big, root / f"refined_x{scale}.h5", accelerator, batch_size, num_workers,
                                     writer_threads, compression_level, chunk_size)
            queue = context.Queue()
            child = context.Process(target=_memory_child,
                                    args=(OmegaConf.to_yaml(cfg_big), torch.get_num_threads(), queue))
            child.start()
            result["memory"].append({"scale": scale, **queue.get()})
            child.join()
            big.unlink()
        if len(result["memory"]) >= 2:
            first, last = result["memory"][0], result["memory"][-1]
            result["memory_peak_rss_ratio"] = last["peak_rss_mib"] / first["peak_rss_mib"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=100, help="store size in batches (speed run)")
    parser.add_argument("--shape", type=int, nargs=3, default=(1, 36, 60), metavar=("C", "H", "W"))
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--num-workers", type=int, default=None, help="default: 0 on CPU, 2 on GPU")
    parser.add_argument("--compression-level", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=1024,
                        help="memory is ~3 chunks per rank: small enough that both stores reach that bound")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-scales", type=int, nargs="*", default=(1, 10))
    args = parser.parse_args()
    result = bench_refine(args.batch_size, args.batches, tuple(args.shape), args.width, args.blocks, args.accelerator,
                          args.num_workers, compression_level=args.compression_level, chunk_size=args.chunk_size,
                          repeats=args.repeats,
                          memory_scales=tuple(args.memory_scales))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
