"""Refine export against the bare refiner forward: speed side by side, peak memory per store size.

The targets (docs/refine.md): refining a store, :func:`simgan.export.refine.refine` end to
end (reading, normalizing, refining, quantizing, compressing, chunk files, merge), runs at
>= 0.9x the bare refiner forward ``R(x)`` at the same batch size on the same machine, and
its peak memory does not grow with the store. Measured with this run's refiner
(:func:`.reference.net_configs`), batch and image size, on a store of ``refine_batches``
batches of rendered eyes (:func:`.data.eye_store`):

- speed, in this process, the two alternating ``refine_repeats`` times so that load from other
  processes hits both alike. *bare*: ``R(x)`` over the store's own batches, normalized and
  in memory already (distinct batches: one batch again and again stays in the CPU caches
  and flatters the baseline by ~30% for small nets on CPU). *export*: ``refine`` of the
  store, from the start of the predict loop to the merged store on disk. ``ratio`` is the
  best export over the best bare run; beside it the median of each export against the
  bare run just before it, and the ratio of CPU time per image (all threads, compression
  included: the least load-sensitive figure on a shared CPU);
- memory, per store of ``refine_memory_scales`` times that size, in a fresh process
  (:mod:`.refine_memory`), in chunks of a quarter of the speed store, so that even the
  smallest store holds the ~3 chunks a rank keeps at most.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from simgan.bench.data import eye_store
from simgan.bench.quiet import quiet
from simgan.bench.reference import net_configs
from simgan.bench.refine_memory import peak_memory
from simgan.bench.settings import BenchSettings
from simgan.export.predictor import RefinePredictor
from simgan.export.refine import refine

CHUNK_SIZE = 1024  # images per chunk file in the speed runs


def _checkpoint(path: Path, refiner: dict, image_shape: tuple[int, int, int], seed: int) -> tuple[Path, nn.Module]:
    """A checkpoint in the layout :func:`simgan.checkpoint.load_refiner` reads, and its refiner."""
    torch.manual_seed(seed)
    net = instantiate(refiner).eval().requires_grad_(False)
    torch.save({"hyper_parameters": {"refiner": refiner, "image_shape": list(image_shape)},
                "state_dict": {f"refiner.{k}": v for k, v in net.state_dict().items()}, "global_step": 0}, path)
    return path, net


def _refine_config(s: BenchSettings, ckpt: Path, store: Path, output: Path, chunk_size: int) -> DictConfig:
    return OmegaConf.create({
        "ckpt_path": str(ckpt), "input": str(store), "output": str(output), "overwrite": True, "resume": False,
        "allow_size_mismatch": False, "batch_size": s.batch, "num_workers": None, "chunk_size": chunk_size,
        "writer_threads": None, "compile": False, "contact_sheet": 0, "throttle_s": 0.0, "compression_level": 4,
        "trainer": {"_target_": "lightning.pytorch.Trainer", "accelerator": "gpu" if s.device.startswith("cuda")
                    else "cpu", "devices": 1, "precision": "32-true", "default_root_dir": str(output.parent)},
    })


def _inputs(refiner: nn.Module, store: Path, batch: int, device: torch.device) -> list[torch.Tensor]:
    """The store's batches as the export's predictor normalizes them, on the device."""
    import h5py

    with h5py.File(store, "r") as f:
        images = f["images"]
        predictor = RefinePredictor(refiner, (0.0, 255.0), images.dtype)
        return [predictor.normalize(torch.from_numpy(images[a:a + batch]).to(device))
                for a in range(0, len(images), batch)]


def _bare_forward(refiner: nn.Module, xs: list[torch.Tensor], device: torch.device) -> tuple[float, float]:
    """(wall s, CPU s) of ``refiner(x)`` over ``xs``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for x in xs[:2]:  # warm-up (allocator, kernels)
            refiner(x)
        sync()
        started, cpu = time.perf_counter(), time.process_time()
        for x in xs:
            refiner(x)
        sync()
    return time.perf_counter() - started, time.process_time() - cpu


def _speed(s: BenchSettings, refiner: nn.Module, cfg: DictConfig, n: int) -> dict:
    device = torch.device(s.device)
    xs = _inputs(refiner.to(device), Path(cfg.input), s.batch, device)
    with quiet():
        refine(cfg)  # warm-up: lazy imports, first-touch pages, the kernels' first calls
    bare, export, loop, bare_cpu, export_cpu = [], [], [], [], []
    for _ in range(s.refine_repeats):
        wall, cpu = _bare_forward(refiner, xs, device)
        bare.append(n / wall)
        bare_cpu.append(cpu / n)
        cpu = time.process_time()
        with quiet():
            summary = refine(cfg)
        export_cpu.append((time.process_time() - cpu) / n)
        export.append(n / summary["seconds"])
        loop.append(summary["images_per_s"])
    paired = [e / b for e, b in zip(export, bare)]
    return {
        "bare_forward_images_per_s": max(bare),
        "export_images_per_s": max(export),
        "export_predict_loop_images_per_s": max(loop),
        "ratio": max(export) / max(bare),
        "predict_loop_ratio": max(loop) / max(bare),
        "paired_ratio_median": float(np.median(paired)),
        "cpu_ratio": float(np.median(bare_cpu) / np.median(export_cpu)),
        "runs": {"bare": bare, "export": export, "predict_loop": loop, "paired_ratio": paired,
                 "bare_cpu_s_per_image": bare_cpu, "export_cpu_s_per_image": export_cpu},
    }


def bench_export(s: BenchSettings, workdir: str | Path) -> dict:
    """The refine export of this run's setting against its bare forward, and its peak memory per store size."""
    root = Path(workdir)
    n = s.batch * s.refine_batches
    refiner_cfg = net_configs(s)["refiner"]
    ckpt, refiner = _checkpoint(root / "refiner.ckpt", refiner_cfg, s.image_shape, s.seed)
    store = eye_store(root / "refine_input.h5", n, s.image_shape, s.seed)
    result = {
        "measured": True,
        "setting": {"batch": s.batch, "image_shape": list(s.image_shape), "refiner": refiner_cfg, "images": n,
                    "chunk_size": CHUNK_SIZE, "repeats": s.refine_repeats, "torch_threads": torch.get_num_threads()},
        **_speed(s, refiner, _refine_config(s, ckpt, store, root / "refined.h5", CHUNK_SIZE), n),
        "memory": [],
    }
    chunk = s.batch * max(1, s.refine_batches // 4)
    for scale in s.refine_memory_scales:
        big = eye_store(root / f"refine_input_x{scale}.h5", n * scale, s.image_shape, s.seed)
        cfg = _refine_config(s, ckpt, big, root / f"refined_x{scale}.h5", chunk)
        result["memory"].append({"scale": scale, "chunk_size": chunk, **peak_memory(cfg)})
        big.unlink()
    if len(result["memory"]) >= 2:
        result["memory_peak_rss_ratio"] = result["memory"][-1]["peak_rss_mib"] / result["memory"][0]["peak_rss_mib"]
    return result


def refine_setting(result: dict) -> str:
    s = result["setting"]
    c, h, w = s["image_shape"]
    return (f"{s['images']} images of {c}x{h}x{w}, batch {s['batch']}, refiner {s['refiner']['num_blocks']} blocks "
            f"of {s['refiner']['width']}")


def refine_markdown(result: dict) -> list[str]:
    """The section of ``results.md``: speed side by side, then peak memory per store size."""
    r, paired = result, result["runs"]["paired_ratio"]
    lines = [f"## Refine export vs bare refiner forward ({refine_setting(r)})", "",
             "| bare forward img/s | export img/s | export predict loop img/s | ratio (best/best) | "
             "paired ratio, median (range) | CPU-time ratio |", "|---|---|---|---|---|---|",
             f"| {r['bare_forward_images_per_s']:.1f} | {r['export_images_per_s']:.1f} | "
             f"{r['export_predict_loop_images_per_s']:.1f} | {r['ratio']:.3f} | {r['paired_ratio_median']:.3f} "
             f"({min(paired):.2f}-{max(paired):.2f}) | {r['cpu_ratio']:.3f} |", ""]
    if r["memory"]:
        lines += ["| store | chunk size | RSS before MiB | peak RSS MiB | tracemalloc peak MiB |", "|---|---|---|---|---|"]
        lines += [f"| {m['images']} images ({m['scale']}x) | {m['chunk_size']} | {m['rss_before_mib']:.1f} | "
                  f"{m['peak_rss_mib']:.1f} | {m['tracemalloc_peak_mib']:.1f} |" for m in r["memory"]]
        lines.append("")
    return lines
