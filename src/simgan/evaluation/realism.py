"""Realism, before and after refinement: C2ST accuracy and KID against the same real images.

The paper's realism evidence is a user study (Sec. 3.1): people shown real and *refined*
eyes picked the real one 517/1000 times (51.7%, chance is 50%), while real vs *raw
synthetic* was 162/200 (81%). Here a fresh CNN plays the subject
(:func:`simgan.metrics.c2st.c2st`) and KID (:func:`simgan.metrics.kid.kid`'s definition)
adds a feature-distribution distance. Both are always measured for synthetic-vs-real
*and* refined-vs-real, with the same real images, the same seed (same subsets, same judge
initialisation) and the same budget, so the two numbers differ only by the refiner:
the gap it closed is their difference.
"""

from __future__ import annotations

import warnings

from torch import Tensor
from torchmetrics.image.kid import KernelInceptionDistance

from simgan.metrics._common import check_images, progress, seeded
from simgan.metrics.c2st import c2st
from simgan.metrics.kid import default_extractor


def c2st_pair(real: Tensor, synthetic: Tensor, refined: Tensor, seed: int = 0, max_epochs: int = 10,
              time_budget_s: float | None = 120.0, device: str = "cpu", show_progress: bool = True) -> dict:
    """``{"synthetic": c2st(real, synthetic), "refined": c2st(real, refined)}`` with one seed."""
    kw = dict(seed=seed, max_epochs=max_epochs, time_budget_s=time_budget_s, device=device,
              show_progress=show_progress)
    return {"synthetic": c2st(real, synthetic, **kw), "refined": c2st(real, refined, **kw)}


def kid_many(real: Tensor, others: dict[str, Tensor], subset_size: int = 1000, subsets: int = 100,
             size: int = 128, batch_size: int = 64, seed: int = 0, device: str = "cpu",
             show_progress: bool = True) -> dict[str, dict[str, float]]:
    """KID of each set in ``others`` against ``real``, extracting the real features once.

    Same numbers as ``kid(real, other, ...)`` for each pair (same extractor, same seeded
    subset draws; see tests), at about half the cost: the extractor is most of the time
    on a CPU, and ``reset_real_features=False`` keeps the real side between the pairs.
    ``subset_size`` is capped at the smallest set.
    """
    check_images(real, "kid: real")
    for name, x in others.items():
        check_images(x, f"kid: {name}")
    subset_size = min([subset_size, len(real), *(len(x) for x in others.values())])
    if subset_size < 2:
        raise ValueError("kid: need at least 2 images per set")
    feature = default_extractor(size).to(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(feature=feature, subsets=subsets, subset_size=subset_size,
                                         reset_real_features=False).to(device)
    total = sum(-(-len(x) // batch_size) for x in (real, *others.values()))
    out = {}
    with progress(total, "kid features", show_progress) as bar:
        for x in real.split(batch_size):
            metric.update(x.to(device), real=True)
            bar.update(1)
        for name, images in others.items():
            metric.reset()  # drops the fake features only
            for x in images.split(batch_size):
                metric.update(x.to(device), real=False)
                bar.update(1)
            with seeded(seed):  # compute() draws its subsets from torch's global RNG
                mean, std = metric.compute()
            out[name] = {"kid_mean": float(mean), "kid_std": float(std), "subset_size": subset_size,
                         "n_a": len(real), "n_b": len(images)}
    feature.to("cpu")  # the cached extractor is shared; leave it where kid() expects it
    return out


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
        # share of the synthetic-to-real C2ST gap (accuracy above chance) that refinement removed
        gap = out["c2st_synthetic_acc"] - 0.5
        out["c2st_gap_closed"] = (out["c2st_synthetic_acc"] - out["c2st_refined_acc"]) / gap if gap > 0 else 0.0
    return out

