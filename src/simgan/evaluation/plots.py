"""The evaluation's PNG figures (matplotlib, Agg backend: no display needed).

Each function draws one figure from the numbers in ``metrics.json`` and writes it; the
paper's reference values are drawn beside ours where they exist (Sec. 3.1 user study,
Sec. 3.1 pupil shift), labelled as what they are: a different judge, a different ruler.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless servers, no Tk
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PAPER_HUMAN_ACC = {"synthetic": 0.81, "refined": 0.517}  # Sec. 3.1: 162/200 and 517/1000
PAPER_PUPIL_SHIFT_PX = (1.1, 0.8)  # Sec. 3.1: mean, std, on 55-px-wide eyes
COLOURS = {"synthetic": "#9a9a9a", "refined": "#2a7ab9", "real": "#3a9a4a"}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_realism(c2st_results: dict, kid_results: dict | None, path: Path) -> Path:
    """C2ST accuracy (with binomial error bars and chance) and KID, synthetic beside refined."""
    names = list(c2st_results)
    panels = 2 if kid_results else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    ax = axes[0, 0]
    acc = np.array([c2st_results[n]["accuracy"] for n in names])
    err = np.sqrt(acc * (1 - acc) / np.array([c2st_results[n]["n_test"] for n in names]))
    ax.bar(names, acc, yerr=err, capsize=4, color=[COLOURS.get(n, "C0") for n in names])
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance (indistinguishable)")
    ax.scatter(names, [PAPER_HUMAN_ACC.get(n, np.nan) for n in names], marker="_", s=600, color="#c03030",
               zorder=3, label="paper: humans (eyes)")
    for i, a in enumerate(acc):
        ax.text(i, a + err[i] + 0.01, f"{a:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0.4, 1.2)  # headroom for the legend above the bars
    ax.set_ylabel("held-out accuracy vs real")
    ax.set_title("C2ST: can a fresh CNN tell it from real?")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    if kid_results:
        ax = axes[0, 1]
        names_k = list(kid_results)
        mean = [kid_results[n]["kid_mean"] for n in names_k]
        std = [kid_results[n]["kid_std"] for n in names_k]
        ax.bar(names_k, mean, yerr=std, capsize=4, color=[COLOURS.get(n, "C0") for n in names_k])
        ax.axhline(0.0, color="k", lw=1)
        for i, m in enumerate(mean):
            ax.text(i, m + std[i], f"{m:.4f}", ha="center", va="bottom", fontsize=9)
        ax.set_ylabel("KID vs real (EfficientNet-Lite0 features)")
        ax.set_title("KID (lower = closer to real)")
    return _save(fig, path)


def plot_label_shift(per_image: dict[str, np.ndarray], image_width: int, path: Path) -> Path:
    """Histograms of per-image pupil shift (px) and gaze drift (deg), synthetic -> refined."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    shift, drift = per_image["pupil_shift_px"], per_image["gaze_drift_deg"]
    ax = axes[0]
    ax.hist(shift, bins=30, color=COLOURS["refined"], alpha=0.85)
    ax.axvline(shift.mean(), color="k", lw=1.5, label=f"mean {shift.mean():.2f} +/- {shift.std():.2f} px")
    paper = PAPER_PUPIL_SHIFT_PX[0] * image_width / 55
    ax.axvline(paper, color="#c03030", ls="--", lw=1.5, label=f"paper (by hand): {paper:.2f} px at {image_width} px")
    ax.set_xlabel(f"pupil centre shift, px ({image_width}-px-wide eyes)")
    ax.set_ylabel("images")
    ax.set_title("label preservation: pupil")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.hist(drift, bins=30, color=COLOURS["refined"], alpha=0.85)
    ax.axvline(drift.mean(), color="k", lw=1.5, label=f"mean {drift.mean():.2f} +/- {drift.std():.2f} deg")
    ax.set_xlabel("gaze direction drift, degrees")
    ax.set_title("label preservation: gaze")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_downstream(summary: dict, path: Path) -> Path:
    """Held-out real score of task models trained on synthetic / refined / real: accuracy
    (``task: classify``) or the error measure with its unit (``task: regress``)."""
    regress = summary.get("task") == "regress"
    key = "error" if regress else "accuracy"
    names = [n for n in ("synthetic", "refined", "real") if f"{key}_{n}" in summary]
    score = [summary[f"{key}_{n}"] for n in names]
    labels = {"synthetic": "(a) raw synthetic", "refined": "(b) refined", "real": "(c) real (reference)"}
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    ax.bar([labels[n] for n in names], score, color=[COLOURS[n] for n in names])
    top = max(score) if score else 1.0
    for i, v in enumerate(score):
        ax.text(i, v + 0.01 * (top if regress else 1.0), f"{v:.2f}" if regress else f"{v:.3f}", ha="center",
                va="bottom", fontsize=9)
    n_test = summary.get("n_test", "?")
    if regress:
        ax.set_ylim(0, 1.12 * top if top > 0 else 1.0)
        ax.set_ylabel(f"{summary.get('error_measure', '')} error ({summary.get('error_unit', '')}) "
                      f"on {n_test} held-out real")
        ax.set_title("downstream: train on X, test on real (lower = better)", fontsize=10)
    else:
        ax.set_ylim(0, 1.08)
        ax.set_ylabel(f"accuracy on {n_test} held-out real images")
        ax.set_title("downstream: train on X, test on real")
    ax.tick_params(axis="x", labelsize=8)
    return _save(fig, path)
