"""Realism, before and after refinement: C2ST accuracy and KID against the same real images.

The paper's realism evidence is a user study (Sec. 3.1): people shown real and *refined*
eyes picked the real one 517/1000 times (51.7%, chance is 50%), while real vs *raw
synthetic* was 162/200 (81%). Here a fresh CNN plays the subject
(:func:`simgan.metrics.c2st.c2st`) and KID (:func:`simgan.metrics.kid.kid_many`, which
extracts the real images' features once for both pairs) adds a feature-distribution
distance. Both are always measured for synthetic-vs-real *and* refined-vs-real, with the
same real images, the same seed (same subsets, same judge initialisation) and the same
budget, so the two numbers differ only by the refiner: the gap it closed is their
difference (:func:`simgan.metrics.c2st.gap_closed`).
"""

from __future__ import annotations

from torch import Tensor

from simgan.metrics.c2st import c2st, gap_closed


def c2st_pair(real: Tensor, synthetic: Tensor, refined: Tensor, seed: int = 0, max_epochs: int = 10,
              time_budget_s: float | None = 120.0, device: str = "cpu", show_progress: bool = True) -> dict:
    """``{"synthetic": c2st(real, synthetic), "refined": c2st(real, refined)}`` with one seed."""
    kw = dict(seed=seed, max_epochs=max_epochs, time_budget_s=time_budget_s, device=device,
              show_progress=show_progress)
    return {"synthetic": c2st(real, synthetic, **kw), "refined": c2st(real, refined, **kw)}


def realism_summary(c2st_results: dict, kid_results: dict | None) -> dict[str, float]:
    """Flat headline numbers: ``c2st_<set>_acc``, ``c2st_<set>_auc``, ``kid_<set>`` (+ ``_std``)."""
    out = {}
    for name, r in c2st_results.items():
        out[f"c2st_{name}_acc"] = r["accuracy"]
        out[f"c2st_{name}_auc"] = r["auc"]
    for name, r in (kid_results or {}).items():
        out[f"kid_{name}"] = r["kid_mean"]
        out[f"kid_{name}_std"] = r["kid_std"]
    if {"c2st_synthetic_acc", "c2st_refined_acc"} <= set(out):
        out["c2st_gap_closed"] = gap_closed(out["c2st_synthetic_acc"], out["c2st_refined_acc"])
    return out

