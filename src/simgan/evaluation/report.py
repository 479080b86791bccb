"""What an evaluation leaves behind: ``metrics.json``, ``report.md``, and the same to loggers.

``metrics.json`` holds ``summary`` (flat headline floats, the keys the tests and the docs
table use), the full per-metric dicts (``realism``, ``labels``, ``downstream``), and
``meta`` (checkpoint, data, settings, seconds per stage). Loggers get ``summary`` as
``eval/<key>`` and each PNG as an image (W&B: ``WandbLogger.log_image``; never
``logger.experiment.add_image``, which is TensorBoard-only).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image

FIGURE_CAPTIONS = {
    "grid": "synthetic | refined | real (fixed held-out samples)",
    "realism": "C2ST accuracy and KID vs real: raw synthetic beside refined",
    "label_shift": "per-image pupil shift and gaze drift, synthetic -> refined",
    "downstream": "held-out real score: task model trained on raw synthetic / refined / real",
}


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def write_metrics(results: dict, path: Path) -> Path:
    path.write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


DOWNSTREAM_SETS = (("synthetic", "(a) raw synthetic"), ("refined", "(b) refined synthetic"),
                   ("real", "(c) real labeled (reference)"))


def _downstream_lines(d: dict) -> list[str]:
    """Sec. 3.2's table: accuracy (classify) or error with its unit (regress), per training set."""
    regress = d.get("task") == "regress"
    key = "error" if regress else "accuracy"
    what = f"{d['error_measure']} error, {d['error_unit']} (lower is better)" if regress else "accuracy"
    lines = ["", f"## Downstream (paper Sec. 3.2): {d.get('model', 'LeNet')} tested on {d['n_test']} held-out "
             f"real images", "", f"| trained on | images | {what} |", "| --- | --- | --- |"]
    for name, label in DOWNSTREAM_SETS:
        if f"{key}_{name}" in d:
            score = d[f"{key}_{name}"]
            lines.append(f"| {label} | {d[f'n_train_{name}']} | {f'{score:.3f}' if regress else _pct(score)} |")
    return lines


def render_report(results: dict, figures: dict[str, Path]) -> str:
    s, meta = results["summary"], results["meta"]
    lines = [
        "# SimGAN refiner evaluation", "",
        f"- checkpoint: `{meta['checkpoint']['path']}` (step {meta['checkpoint']['global_step']}, "
        f"sha256 `{(meta['checkpoint'].get('sha256') or '')[:12]}`)",
        f"- data: {meta['data_description']} (config from {meta['data_from']})",
        f"- images: {meta['n_synthetic']} held-out synthetic, {meta['n_real']} real; seed {meta['seed']}; "
        f"took {meta['seconds']['total']:.0f} s",
    ]
    lines += [f"- note: {n}" for n in meta.get("notes", [])]
    r = results["realism"]
    lines += ["", "## Realism (paper Sec. 3.1: humans 81% on raw synthetic, 51.7% on refined; 50% = chance)", "",
              "| vs real | C2ST accuracy | C2ST AUC | p (acc > 0.5) | KID |", "| --- | --- | --- | --- | --- |"]
    for name in ("synthetic", "refined"):
        c = r["c2st"][name]
        k = (r.get("kid") or {}).get(name)
        kid = f"{k['kid_mean']:.4f} +/- {k['kid_std']:.4f}" if k else "n/a"
        lines.append(f"| {name} | {_pct(c['accuracy'])} | {c['auc']:.3f} | {c['p_value']:.2g} | {kid} |")
    c = r["c2st"]["refined"]
    lines += ["", f"C2ST judge: fresh CNN, {c['n_train']} training / {c['n_test']} held-out images, "
              f"{c['epochs']} epochs; share of the synthetic C2ST gap closed by refinement: "
              f"{_pct(s.get('c2st_gap_closed', 0.0))}. KID uses EfficientNet-Lite0 ImageNet features "
              "(comparable within this project only, not with Inception FID/KID)."]
    if results.get("labels"):
        lab = results["labels"]
        lines += ["", "## Label preservation (paper Sec. 3.1: pupil moved 1.1 +/- 0.8 px on 55-px eyes)", "",
                  "| measure | mean | std |", "| --- | --- | --- |",
                  f"| pupil shift, px | {lab['pupil_shift_px_mean']:.3f} | {lab['pupil_shift_px_std']:.3f} |",
                  f"| pupil shift at 55 px width, px | {lab['pupil_shift_px_at_55_mean']:.3f} | |",
                  f"| gaze drift, deg | {lab['gaze_drift_deg_mean']:.3f} | {lab['gaze_drift_deg_std']:.3f} |",
                  f"| ruler: pupil error on held-out synthetic, px | {lab['ruler_pupil_error_px_mean']:.3f} | "
                  f"{lab['ruler_pupil_error_px_std']:.3f} |",
                  f"| pupil error on refined vs synthetic labels, px | {lab['refined_pupil_error_px_mean']:.3f} | "
                  f"{lab['refined_pupil_error_px_std']:.3f} |",
                  f"| ruler: gaze error on held-out synthetic, deg | {lab['ruler_gaze_error_deg_mean']:.3f} | "
                  f"{lab['ruler_gaze_error_deg_std']:.3f} |",
                  f"| gaze error on refined vs synthetic labels, deg | {lab['refined_gaze_error_deg_mean']:.3f} | "
                  f"{lab['refined_gaze_error_deg_std']:.3f} |"]
    if results.get("downstream"):
        lines += _downstream_lines(results["downstream"])
    lines += ["", "## Figures", ""]
    lines += [f"![{FIGURE_CAPTIONS.get(k, k)}]({p.name})" for k, p in figures.items()]
    lines += ["", "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in meta["seconds"].items()), ""]
    return "\n".join(lines)


def log_to_loggers(loggers: list, summary: dict[str, float], figures: dict[str, Path]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    flat = {f"eval/{k}": float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    for logger in loggers:
        logger.log_metrics(flat, step=0)
        if isinstance(logger, WandbLogger):
            for key, path in figures.items():
                with Image.open(path) as image:
                    logger.log_image(key=f"eval/{key}", images=[image.copy()],
                                     caption=[FIGURE_CAPTIONS.get(key, key)], step=0)
        logger.save()
        logger.finalize("success")
