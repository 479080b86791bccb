"""Simulator geometry vs real eyes: histograms, a summary table and a side-by-side grid.

SimGAN refines synthetic eyes toward real ones but keeps their geometry (paper Sec. 3.1),
so the simulator must draw eyes whose iris size, position and lid opening match the real
MPIIGaze crops (Zhang et al. CVPR 2015). This measures both domains with the one
instrument of :mod:`simgan.metrics.eye_geometry`, for the renderer's current ranges
("after") and the ranges it had before they were matched ("before"), checks the
instrument against the renderer's known geometry, and writes:

- docs/images/eye_geometry.png: one histogram panel per quantity, real vs synthetic;
- docs/images/eye_geometry_grid.png: rendered (current) and real eyes side by side.

Run from the repository root: ``python scripts/eye_geometry.py [--n 2500]``.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from simgan.data.simulators import eyes  # noqa: E402
from simgan.metrics.eye_geometry import measure_eyes  # noqa: E402
from simgan.utils.image_grid import save_grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data/mpiigaze/mpiigaze_real_eyes_36x60.npz"
QUANTITIES = {"x": "iris centre x (px)", "y": "iris centre y (px)", "iris_r": "iris radius (px)",
              "opening": "lid opening at the iris (px)", "upper_lid": "upper lid above iris centre (px)",
              "lower_lid": "lower lid below iris centre (px)"}

# The geometry of RENDER_VERSION 0 (ranges, and the lids' coupling to pitch, as at git
# commit 8c471b5, whose renderer scripts/ablation.py runs), kept to show what the matching
# changed; patched into today's renderer so that its drawn_geometry gives the truth.
BEFORE_LID_FOLLOW = (6.0, 1.5)
BEFORE = {
    "yaw": (-np.deg2rad(35.0), np.deg2rad(35.0)),
    "pitch": (-np.deg2rad(25.0), np.deg2rad(25.0)),
    "shift_x": (-3.0, 3.0),
    "shift_y": (-2.0, 2.0),
    "scale": (0.88, 1.12),
    "iris_r": (7.6, 9.4),
    "ball_dx": (-1.0, 1.0),
    "ball_dy": (-0.5, 1.5),
    "upper_open": (6.0, 10.0),
    "lower_open": (5.0, 8.0),
}


@contextmanager
def old_geometry():
    """Temporarily render with the geometry of RENDER_VERSION 0."""
    saved, saved_follow = dict(eyes._PARAM_RANGES), eyes._LID_FOLLOW
    eyes._PARAM_RANGES.update(BEFORE)
    eyes._LID_FOLLOW = BEFORE_LID_FOLLOW
    try:
        yield
    finally:
        eyes._PARAM_RANGES.clear()
        eyes._PARAM_RANGES.update(saved)
        eyes._LID_FOLLOW = saved_follow


def render(n: int, seed: int) -> tuple[np.ndarray, dict]:
    """Images and the instrument's error against what the renderer drew."""
    images, labels = eyes.render_eyes(n, seed=seed)
    pupil = labels["pupil"]
    found = measure_eyes(images)
    truth = eyes.drawn_geometry(eyes._sample_params(n, seed))  # what render_eyes drew
    ok = found["ok"]
    errors = {
        "centre": np.hypot(found["x"] - pupil[:, 0], found["y"] - pupil[:, 1])[ok],
        "y": (found["y"] - pupil[:, 1])[ok],
        "iris_r": (found["iris_r"] - truth["iris_r"])[ok],
        **{k: (found[k] - truth[k])[ok] for k in ("opening", "upper_lid", "lower_lid")},
    }
    return images, {"found": found, "errors": errors}


def summary(found: dict) -> dict[str, tuple[float, float]]:
    ok = found["ok"]
    out = {}
    for k in QUANTITIES:
        q25, q50, q75 = np.percentile(found[k][ok], (25, 50, 75))
        out[k] = (q50, q75 - q25)
    return out


def print_validation(name: str, found: dict, errors: dict) -> None:
    print(f"instrument vs drawn geometry, synthetic {name} (failed on {1 - found['ok'].mean():.1%}):")
    for k, e in errors.items():
        print(f"  {k:8s} median error {np.median(e):+.2f} px, median |error| {np.median(np.abs(e)):.2f},"
              f" mean |error| {np.mean(np.abs(e)):.2f}, 90th pct |error| {np.percentile(np.abs(e), 90):.2f}")


def print_table(stats: dict, fails: dict) -> None:
    names = list(stats)
    print("| quantity | " + " | ".join(f"{n} median (IQR)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for k, label in QUANTITIES.items():
        cells = [f"{stats[n][k][0]:.2f} ({stats[n][k][1]:.2f})" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| failed | " + " | ".join(f"{fails[n]:.1%}" for n in names) + " |")


def histograms(found: dict, path: Path) -> None:
    fig, axes = plt.subplots(2, len(QUANTITIES), figsize=(3.6 * len(QUANTITIES), 6.2), constrained_layout=True)
    for col, (k, label) in enumerate(QUANTITIES.items()):
        values = [found[n][k][found[n]["ok"]] for n in found]
        lo, hi = np.percentile(np.concatenate(values), (0.5, 99.5))
        bins = np.linspace(lo, hi, 40)
        for row, synthetic in enumerate(("synthetic before", "synthetic after")):
            ax = axes[row, col]
            for name, color in (("real", "tab:gray"), (synthetic, "tab:orange")):
                v = found[name][k][found[name]["ok"]]
                ax.hist(v, bins=bins, density=True, histtype="stepfilled", alpha=0.45, color=color,
                        label=f"{name} (median {np.median(v):.1f})")
            ax.set_xlabel(label)
            ax.legend(fontsize=8)
        axes[0, col].set_title(label)
    axes[0, 0].set_ylabel("before: density")
    axes[1, 0].set_ylabel("after: density")
    fig.suptitle("Eye geometry, MPIIGaze real vs rendered (measured by simgan.metrics.eye_geometry)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grid(synthetic: np.ndarray, real: np.ndarray, path: Path, rows: int = 8) -> None:
    """Columns: rendered, real, rendered, real (8 eyes each)."""
    def col(images):
        return torch.from_numpy(images[:rows].reshape(rows, 1, 36, 60).astype(np.float32)) / 127.5 - 1
    save_grid([col(synthetic), col(real), col(synthetic[rows:]), col(real[rows:])], path, scale=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2500, help="rendered eyes per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images")
    args = parser.parse_args()

    real = np.load(REAL)["images"]
    found = {"real": measure_eyes(real)}
    with old_geometry():
        _, before = render(args.n, args.seed)
    after_images, after = render(args.n, args.seed)
    found["synthetic before"], found["synthetic after"] = before["found"], after["found"]

    print_validation("before", before["found"], before["errors"])
    print_validation("after", after["found"], after["errors"])
    print_table({n: summary(f) for n, f in found.items()}, {n: 1 - f["ok"].mean() for n, f in found.items()})
    histograms(found, args.out / "eye_geometry.png")
    shuffled = real[np.random.default_rng(args.seed).permutation(len(real))]
    grid(after_images[:, 0], shuffled, args.out / "eye_geometry_grid.png")
    print(f"wrote {args.out / 'eye_geometry.png'} and {args.out / 'eye_geometry_grid.png'}")


if __name__ == "__main__":
    main()
