"""Cheap realism and label metrics at every validation, for sweeps and "keep the best refiner".

The full evaluation (``src/evaluate.py``, :mod:`simgan.evaluation`) takes minutes; this
callback measures a small, fixed version of the same things at each validation, so
that ``ModelCheckpoint(monitor="val/realism_gap")`` can keep the best refiner and a sweep
can optimize it (``optimized_metric``):

- ``val/c2st_refined``: the paper's realism test (Sec. 3.1 "visual Turing test", where
  people scored 51.7% on refined eyes) with a fresh CNN for the subject
  (:func:`simgan.metrics.c2st.c2st`): held-out accuracy telling the refined versions of
  ``n_images`` fixed synthetic validation images from ``n_images`` fixed real ones
  (:func:`simgan.data.subsets.first_images`: validation first, topped up from training).
  0.5 = indistinguishable. Same images and same seed every time, so a change is the
  refiner's doing.
- ``val/c2st_synthetic``: the same test on the raw synthetic images, computed once at fit
  start: the baseline the refiner has to beat (the paper's humans: 81%).
- ``val/pupil_shift_px``, ``val/gaze_drift_deg`` (data labels ``pupil`` and ``gaze``):
  label preservation (Sec. 3.1, Eq. 4 self-regularization; the paper measured 1.1 px by
  hand) against a small pupil/gaze estimator trained ONCE at fit start on the synthetic
  training stream (:func:`simgan.metrics.pupil.fit_label_regressor`, read by
  :func:`simgan.metrics.pupil.label_shift`).
- ``val/label_flip`` (a class label such as ``digit``): the share of images whose class,
  as read by a small classifier trained once at fit start on synthetic images, changes
  under refinement (:func:`simgan.metrics.downstream.label_flip`).
- ``val/realism_gap`` (lower is better), the proxy to monitor::

      realism_gap = 2 * |c2st_refined - 0.5|            # 0: indistinguishable, 1: fully separable
                    + pupil_weight * pupil_shift_px     # eyes; 0.1 per px by default
                    + flip_weight * label_flip          # class labels; 1.0 by default

  The label terms keep the proxy from rewarding a refiner that wins realism by
  rewriting the content (the failure self-regularization exists to prevent).
- ``val/realism_seconds``: what the measurement cost (bounded by ``c2st.time_budget_s``
  plus one refiner forward on ``n_images``).

Settings (``conf/callbacks/realism.yaml``) use ``conf/evaluate.yaml``'s names, so one
word means one knob in both: ``n_images``; ``c2st.max_epochs``, ``c2st.time_budget_s``;
``labels.fit_images``, ``labels.steps``, ``labels.time_budget_s``, ``labels.width`` for the
pupil/gaze estimator, and ``labels.class_label``, ``labels.epochs`` for the classifier.

Rank zero computes (one CNN, no collectives); the values are broadcast and every rank
logs the same numbers with ``sync_dist=False`` (nothing to reduce: they are equal), so
``ModelCheckpoint`` and ``EarlyStopping`` find the key on every rank, which
``rank_zero_only=True`` logging would not allow. Skipped during the sanity check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from simgan.data.subsets import first_images, stack
from simgan.errors import ConfigError
from simgan.metrics.c2st import c2st
from simgan.metrics.downstream import fit_classifier, label_flip
from simgan.metrics.pupil import fit_label_regressor, label_shift

log = logging.getLogger("simgan")
EYE_LABELS = ("pupil", "gaze")
# The knobs of conf/evaluate.yaml's c2st and labels groups, under the same names.
C2ST_DEFAULTS = {"max_epochs": 5, "time_budget_s": 5.0}
LABEL_DEFAULTS = {"fit_images": 2000, "steps": 150, "time_budget_s": 15.0, "width": 8, "class_label": "digit",
                  "epochs": 2}


def _settings(group: str, given: Mapping | None, defaults: dict) -> dict:
    unknown = set(given or {}) - set(defaults)
    if unknown:
        raise ConfigError(f"callbacks.realism.{group}: unknown key(s) {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **(given or {})}


class ValidationRealism(Callback):
    """See the module docstring. ``c2st`` and ``labels`` override :data:`C2ST_DEFAULTS` and
    :data:`LABEL_DEFAULTS` key by key."""

    def __init__(self, n_images: int = 256, c2st: Mapping | None = None, labels: Mapping | None = None,
                 pupil_weight: float = 0.1, flip_weight: float = 1.0, seed: int = 0, show_progress: bool = False):
        self.n_images = int(n_images)
        c2st_cfg = _settings("c2st", c2st, C2ST_DEFAULTS)
        self.c2st_kw = {"max_epochs": int(c2st_cfg["max_epochs"]), "time_budget_s": c2st_cfg["time_budget_s"],
                        "seed": seed}
        self.labels = _settings("labels", labels, LABEL_DEFAULTS)
        self.class_label = self.labels["class_label"]
        self.pupil_weight = float(pupil_weight)
        self.flip_weight = float(flip_weight)
        self.seed = int(seed)
        self.show_progress = show_progress
        self.synthetic: Tensor | None = None
        self.real: Tensor | None = None
        self.label_model: torch.nn.Module | None = None
        self.label_kind: str | None = None  # "eyes" | "class" | None
        self.baseline: float | None = None

    # ------------------------------------------------------------------ fit start: once
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        splits = trainer.datamodule.splits
        data_labels = set(trainer.datamodule.labels)
        self.synthetic, _ = first_images(splits, "synthetic", self.n_images)
        self.real, _ = first_images(splits, "real", self.n_images)
        if set(EYE_LABELS) <= data_labels:
            self.label_kind = "eyes"
        elif self.class_label and self.class_label in data_labels:
            self.label_kind = "class"
        if not trainer.is_global_zero:
            return
        started = time.monotonic()
        device = pl_module.device
        fit = self.labels
        with torch.inference_mode(False), torch.enable_grad():
            if self.label_kind is not None:
                # the last training images: the fixed validation images come from the front
                train = splits["synthetic_train"]
                x, y = stack(train, max(0, len(train) - int(fit["fit_images"])), len(train), "read synthetic (fit)")
                if self.label_kind == "eyes":
                    self.label_model = fit_label_regressor(
                        x, {k: y[k] for k in EYE_LABELS}, seed=self.seed, steps=int(fit["steps"]), batch_size=32,
                        time_budget_s=fit["time_budget_s"], width=int(fit["width"]), device=device,
                        show_progress=self.show_progress)
                else:
                    self.label_model = fit_classifier(
                        x, y[self.class_label], seed=self.seed, epochs=int(fit["epochs"]),
                        time_budget_s=fit["time_budget_s"], device=device, show_progress=self.show_progress)
            self.baseline = c2st(self.real, self.synthetic, device=device, show_progress=self.show_progress,
                                 **self.c2st_kw)["accuracy"]
        log.info("validation realism: %d synthetic / %d real images, %s label estimator, synthetic C2ST %.3f "
                 "(set-up %.1f s)", len(self.synthetic), len(self.real), self.label_kind or "no",
                 self.baseline, time.monotonic() - started)

    # ------------------------------------------------------------------ every validation
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.synthetic is None:
            return
        values = self.measure(pl_module) if trainer.is_global_zero else None
        values = trainer.strategy.broadcast(values, src=0)
        for key, value in values.items():
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=False,
                          prog_bar=key == "val/realism_gap")

    def measure(self, pl_module: LightningModule) -> dict[str, float]:
        """The metrics for ``pl_module``'s refiner now (rank zero)."""
        started = time.monotonic()
        device = pl_module.device
        # Lightning validates under inference_mode; the C2ST judge needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            # the plain module (a compiled one would recompile for this batch size), or R's
            # weight average when the run keeps one: the refiner evaluation and refine use
            refiner = getattr(pl_module, "refiner_ema", None) or pl_module.refiner
            was_training = refiner.training
            refiner.eval()
            with torch.no_grad():
                refined = torch.cat([refiner(x.to(device)).float().cpu() for x in self.synthetic.split(256)])
            refiner.train(was_training)
            acc = c2st(self.real, refined.clamp(-1, 1), device=device, show_progress=self.show_progress,
                       **self.c2st_kw)["accuracy"]
        values = {"val/c2st_refined": acc, "val/c2st_synthetic": self.baseline}
        gap = 2.0 * abs(acc - 0.5)
        if self.label_kind == "eyes":
            shift = label_shift(self.label_model, self.synthetic, refined, batch_size=512)
            values["val/pupil_shift_px"] = shift["pupil_shift_px_mean"]
            values["val/gaze_drift_deg"] = shift["gaze_drift_deg_mean"]
            gap += self.pupil_weight * values["val/pupil_shift_px"]
        elif self.label_kind == "class":
            values["val/label_flip"] = label_flip(self.label_model, self.synthetic, refined)
            gap += self.flip_weight * values["val/label_flip"]
        values["val/realism_gap"] = gap
        values["val/realism_seconds"] = time.monotonic() - started
        return {k: float(v) for k, v in values.items()}
