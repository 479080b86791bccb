"""The evaluation run, as a straight sequence: checkpoint + data -> image sets -> refine ->
realism -> labels (eyes) -> downstream (labeled data) -> figures, ``metrics.json``, ``report.md``.

Kept out of ``src/evaluate.py`` so tests call the same function with a composed config.
Every stage is seeded (``cfg.seed``) and bounded (its ``time_budget_s``), and shows a
progress bar; what a stage cannot measure on this data (no eye labels, no labeled real
test set) is skipped with a note in the report, never silently.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from simgan.checkpoint import check_refiner_fits, load_refiner
from simgan.errors import ConfigError
from simgan.evaluation import plots
from simgan.evaluation.downstream import evaluate_downstream, headline
from simgan.evaluation.inputs import build_datamodule, data_config, image_sets, refine_images
from simgan.evaluation.labels import has_eye_labels, label_preservation
from simgan.evaluation.realism import c2st_pair, realism_summary
from simgan.evaluation.report import log_to_loggers, render_report, write_metrics
from simgan.metrics.border import border_step
from simgan.metrics.kid import kid_many
from simgan.utils.image_grid import save_grid
from simgan.utils.instantiators import instantiate_group

log = logging.getLogger("simgan")


class _Stopwatch(dict):
    def __init__(self):
        super().__init__()
        self.start = self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self[name] = now - self.last
        self.last = now


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def evaluate(cfg: DictConfig) -> dict:
    """Evaluates ``cfg.ckpt_path``'s refiner; writes into ``cfg.paths.output_dir``; returns metrics.json's dict."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is not set: python src/evaluate.py "
                          "ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt")
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device, seed, bars = _device(cfg.device), int(cfg.seed), bool(cfg.show_progress)
    clock = _Stopwatch()

    refiner, info = load_refiner(cfg.ckpt_path)
    data_cfg, data_from = data_config(cfg)
    # Before any rendering or reading: a refiner for other channels or another size fails
    # here, in one line (refine refuses the same pairs).
    c, h, w = data_cfg.channels, data_cfg.height, data_cfg.width
    notes = [n for n in [check_refiner_fits(
        info, (c, h, w), f"data (data.channels/height/width = {c}/{h}/{w})",
        remedy=f"evaluate it on the data it was trained on (C x H x W = {info.get('image_shape')})")] if n]
    datamodule = build_datamodule(data_cfg)
    eyes = has_eye_labels(datamodule.labels) and cfg.labels.enabled
    labeled = cfg.downstream.enabled and cfg.downstream.label in datamodule.labels
    n_fit = max(cfg.labels.fit_images if eyes else 0, cfg.downstream.n_train if labeled else 0, 2)
    sets = image_sets(datamodule, int(cfg.n_images), n_fit)
    notes += sets.notes
    clock.lap("data")

    refined = refine_images(refiner, sets.synthetic, cfg.batch_size, device)
    clock.lap("refine")

    c2st_results = c2st_pair(sets.real, sets.synthetic, refined, seed=seed, max_epochs=cfg.c2st.max_epochs,
                             time_budget_s=cfg.c2st.time_budget_s, device=device, show_progress=bars)
    clock.lap("c2st")
    kid_results = None
    if cfg.kid.enabled:
        k = int(cfg.kid.n_images)
        kid_results = kid_many(sets.real[:k], {"synthetic": sets.synthetic[:k], "refined": refined[:k]},
                               subset_size=cfg.kid.subset_size, subsets=cfg.kid.subsets, size=cfg.kid.size,
                               seed=seed, device=device, show_progress=bars)
        clock.lap("kid")
    results = {"summary": realism_summary(c2st_results, kid_results),
               "realism": {"c2st": c2st_results, "kid": kid_results}, "labels": None, "downstream": None}
    # the zero-padding frame (simgan.metrics.border): refined should land near real's own value
    for name, images in {"synthetic": sets.synthetic, "refined": refined, "real": sets.real}.items():
        results["summary"][f"border_step_{name}"] = border_step(images)
        results["summary"][f"border_step_signed_{name}"] = border_step(images, signed=True)
    figures = {}

    if eyes:
        summary, per_image = label_preservation(
            sets.fit, sets.fit_labels, sets.synthetic, sets.synthetic_labels, refined, seed=seed,
            steps=cfg.labels.steps, time_budget_s=cfg.labels.time_budget_s, width=cfg.labels.width,
            device=device, show_progress=bars)
        results["labels"] = summary
        results["summary"].update({k: v for k, v in summary.items() if k != "n"})
        figures["label_shift"] = plots.plot_label_shift(per_image, datamodule.image_shape[2],
                                                        out_dir / "label_shift.png")
        clock.lap("labels")
    elif cfg.labels.enabled:
        notes.append(f"label preservation skipped: the data has labels {list(datamodule.labels)}, "
                     "not pupil and gaze")

    if labeled:
        results["downstream"], more = evaluate_downstream(cfg.downstream, datamodule, sets, refiner,
                                                          cfg.batch_size, device, seed, bars)
        notes += more
        results["summary"].update(headline(results["downstream"]))
        figures["downstream"] = plots.plot_downstream(results["downstream"], out_dir / "downstream.png")
        clock.lap("downstream")
    elif cfg.downstream.enabled:
        notes.append(f"downstream skipped: the synthetic data has no '{cfg.downstream.label}' label "
                     f"(labels: {list(datamodule.labels)}; set downstream.label)")

    rows = int(cfg.grid_rows)
    save_grid([sets.synthetic[:rows], refined[:rows], sets.real[:rows]], out_dir / "grid.png")
    figures = {"grid": out_dir / "grid.png",
               "realism": plots.plot_realism(c2st_results, kid_results, out_dir / "realism.png"), **figures}
    clock.lap("figures")
    clock["total"] = time.monotonic() - clock.start

    results["meta"] = {
        "checkpoint": info, "data_from": data_from, "data_description": datamodule.describe(),
        "data": OmegaConf.to_container(data_cfg, resolve=True), "seed": seed, "device": device,
        "n_synthetic": len(sets.synthetic), "n_real": len(sets.real), "n_fit": len(sets.fit),
        "settings": {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("c2st", "kid", "labels", "downstream")},
        "notes": notes, "seconds": dict(clock), "figures": {k: p.name for k, p in figures.items()},
    }
    write_metrics(results, out_dir / "metrics.json")
    (out_dir / "report.md").write_text(render_report(results, figures))
    log_to_loggers(instantiate_group(cfg.get("logger")), results["summary"], figures)
    log.info("evaluation written to %s (metrics.json, report.md, %s)", out_dir,
             ", ".join(p.name for p in figures.values()))
    return results
