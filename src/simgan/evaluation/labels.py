"""Label preservation for eyes: how far refinement moves the pupil and the gaze, per image.

The paper checked it by hand: pupil ellipses drawn on synthetic and refined eyes moved
1.1 +/- 0.8 px on 55-px-wide eyes (Sec. 3.1). Here a :class:`~simgan.metrics.pupil.PupilRegressor`
is trained once on labeled *synthetic* images (never a refined one, so every refiner is
measured with the same ruler) and reads the pupil and gaze off each synthetic image and its
refined version; the difference is the drift (:func:`simgan.metrics.pupil.label_shift_per_image`).

Reported beside it: the ruler's own error on held-out synthetic images (its resolution),
its error on the *refined* images against the synthetic labels (do the refined images
still carry their labels?), and the shift rescaled to a 55-px-wide eye, the paper's unit.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from simgan.metrics.pupil import fit_label_regressor, label_shift_per_image, regressor_error, summarise

LABELS = ("pupil", "gaze")
PAPER_EYE_WIDTH_PX = 55  # Sec. 3.1: the refined MPIIGaze-sized eyes the ellipses were drawn on


def has_eye_labels(labels) -> bool:
    return set(LABELS) <= set(labels)


def label_preservation(fit: Tensor, fit_labels: dict[str, Tensor], synthetic: Tensor,
                       synthetic_labels: dict[str, Tensor], refined: Tensor, seed: int = 0, steps: int = 1000,
                       time_budget_s: float | None = 180.0, width: int = 16, device: str = "cpu",
                       show_progress: bool = True) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Fits the estimator on ``fit``; measures ``synthetic`` -> ``refined`` (same images, same order).

    Returns ``(summary, per_image)``: summary keys ``pupil_shift_px_{mean,std}``,
    ``gaze_drift_deg_{mean,std}``, ``pupil_shift_px_at_55_mean``, ``ruler_*`` (estimator
    error on held-out synthetic), ``refined_*`` (its error on refined images vs the
    synthetic labels); per_image: ``pupil_shift_px`` and ``gaze_drift_deg`` arrays.
    """
    model = fit_label_regressor(fit, {k: fit_labels[k] for k in LABELS}, seed=seed, steps=steps,
                                time_budget_s=time_budget_s, width=width, device=device,
                                show_progress=show_progress).cpu()
    labels = {k: synthetic_labels[k] for k in LABELS}
    per_image = label_shift_per_image(model, synthetic, refined)
    summary = {**summarise(per_image), "n": len(synthetic)}
    summary["pupil_shift_px_at_55_mean"] = summary["pupil_shift_px_mean"] * PAPER_EYE_WIDTH_PX / synthetic.shape[-1]
    summary.update({f"ruler_{k}": v for k, v in regressor_error(model, synthetic, labels).items()})
    summary.update({f"refined_{k}": v for k, v in regressor_error(model, refined, labels).items()})
    return summary, {k: v.numpy() for k, v in per_image.items()}
