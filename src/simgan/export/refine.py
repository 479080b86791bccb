"""The refine run, as a straight sequence (paper Sec. 1: "refine the synthetic images,
keep their labels, train any model on them"):

check everything -> rank 0 prepares ``<output>.parts/`` -> ``trainer.predict`` (every
rank refines its chunks and writes chunk files) -> barrier -> rank 0 merges them into
``<output>`` (atomic rename), writes ``<output>.png``, removes the parts, prints a summary.

SIGTERM / Ctrl-C stop it after the current chunk, keeping the finished ones, with the
command that resumes (:mod:`simgan.export.stopping`). Kept out of ``src/refine.py`` so
tests and the benchmark call the same function with a composed (or hand-made) config.
"""

from __future__ import annotations

import json
import logging
import time

from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from simgan.export.checks import Job, preflight
from simgan.export.contact_sheet import contact_sheet
from simgan.export.data import RefineData
from simgan.utils.heap import keep_freed_memory
from simgan.export.merge import merge
from simgan.export.predictor import RefinePredictor
from simgan.export.progress import ImagesProgress
from simgan.export.stopping import StopAtChunkBoundary
from simgan.export.writer import ChunkWriter

log = logging.getLogger("simgan")


def _config_yaml(cfg: DictConfig) -> str:
    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # e.g. ${hydra:...} outside a Hydra run
        return OmegaConf.to_yaml(cfg)


def provenance(job: Job, cfg: DictConfig) -> dict:
    return {
        "refined_from": str(job.input),
        "refiner_checkpoint": job.checkpoint["path"],
        "refiner_checkpoint_sha256": job.checkpoint["sha256"] or "",
        "refiner_global_step": job.checkpoint["global_step"],
        "refiner_config": json.dumps(job.checkpoint["refiner"]),
        "refine_config": _config_yaml(cfg),
        "refined_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def refine(cfg: DictConfig) -> dict:
    """Refines ``cfg.input`` into ``cfg.output``; returns the summary (rank 0; ``{}`` elsewhere)."""
    # Before the launcher starts other ranks, this process is rank 0; ranks that `ddp`
    # re-executes see their rank in the environment (LOCAL_RANK/RANK) already.
    rank_zero = rank_zero_only.rank == 0
    todo = 0
    keep_freed_memory()
    job = preflight(cfg, rank_zero=rank_zero)
    if rank_zero:
        job.parts.start(job.manifest(), fresh=not job.resume)
        todo = sum(b - a for a, b in map(job.parts.bounds, job.parts.todo()))
        log.info("refine %s -> %s: %d images in %d chunks of %d, %d already done", job.input, job.output,
                 job.source["count"], job.parts.num_chunks, job.parts.chunk_size, job.source["count"] - todo)

    datamodule = RefineData(str(job.input), job.parts, cfg.batch_size, cfg.get("num_workers"))
    predictor = RefinePredictor(job.refiner, job.source["pixel_range"], job.source["dtype"],
                                compile=bool(cfg.get("compile")), throttle_s=float(cfg.get("throttle_s") or 0),
                                input_path=str(job.input), checkpoint_path=job.checkpoint["path"])
    writer = ChunkWriter(job.parts, job.source["shape"], job.source["dtype"], job.rows,
                         threads=cfg.get("writer_threads"), level=job.level)
    progress = ImagesProgress(job.source["count"])
    stopping = StopAtChunkBoundary(writer, job.parts)
    trainer = instantiate(cfg.trainer, callbacks=[writer, progress, stopping], logger=False,
                          enable_progress_bar=False,
                          enable_checkpointing=False, enable_model_summary=False, use_distributed_sampler=False)
    started = time.perf_counter()
    trainer.predict(predictor, datamodule=datamodule, return_predictions=False)
    # Rank 0 merges only once every rank's chunk files are on disk.
    trainer.strategy.barrier("refine-chunks-written")
    if not trainer.is_global_zero:
        return {}
    # Spawned ranks keep their callbacks' state to themselves: then count the whole run.
    refining_s = progress.seconds or time.perf_counter() - started
    merge(job.parts, job.source, job.output, provenance(job, cfg), level=job.level)
    job.parts.remove()
    sheet = contact_sheet(job.input, job.output, int(cfg.contact_sheet)) if cfg.get("contact_sheet") else None
    summary = {
        "output": str(job.output),
        "count": job.source["count"],
        "refined_now": todo,
        "resumed": job.source["count"] - todo,
        "labels": sorted(job.source["labels"]),
        "seconds": time.perf_counter() - started,
        "refining_seconds": refining_s,
        "images_per_s": todo / refining_s if refining_s > 0 else float("nan"),
        "processes": trainer.world_size,
        "contact_sheet": str(sheet) if sheet else None,
    }
    print(_summary_text(summary, job), flush=True)
    return summary


def _summary_text(s: dict, job: Job) -> str:
    c, h, w = job.source["shape"]
    resumed = f"; {s['resumed']} were already done (resumed)" if s["resumed"] else ""
    lines = [
        "",
        f"Refined {s['refined_now']} of {s['count']} images ({c}x{h}x{w} {job.source['dtype']}{resumed}) "
        f"in {s['seconds']:.1f} s ({s['images_per_s']:.0f} img/s while refining, on {s['processes']} process(es)). "
        "Outputs:",
        f"  refined store: {s['output']}  ({s['count']} images; labels: {', '.join(s['labels']) or 'none'})",
    ]
    if s["contact_sheet"]:
        lines.append(f"  contact sheet: {s['contact_sheet']}  (input | refined)")
    return "\n".join(lines)
