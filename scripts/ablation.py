"""Train and evaluate recipe variants over seeds; write one table (the ablation in docs/evaluation.md).

Each variant is a list of Hydra overrides on top of a base recipe; each (variant, seed) is
one real ``src/train.py`` run followed by one ``src/evaluate.py`` run on its last
checkpoint, with the project's held-out evaluation (C2ST and KID against held-out real
images, label preservation, border step). Runs go to ``logs/ablation/<name>/s<seed>/``;
a finished training (its time in ``times.json``) or evaluation (``eval/metrics.json``) is
not run again, so the script resumes, and deleting ``eval/`` re-evaluates a run. Runs
are sequential on purpose: two trainings sharing a small machine slow each other and
make every time in the table wrong.

    python scripts/ablation.py                                   # the eye ablation, seed 0
    python scripts/ablation.py --seeds 0 1 2 --only shipped      # the shipped recipe over 3 seeds
    python scripts/ablation.py --variant "lsgan=model.loss=lsgan" --seeds 0
    python scripts/ablation.py --table-only                      # rebuild the table from what ran
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The rows before "geometry" refine the renders of the eye simulator as it was before its
# geometry was matched to the real crops (RENDER_VERSION 0, at this commit), so that
# each of them differs from "paper" by one option only; "geometry" is "reflect" on the
# current renderer, "shipped" the shipped recipe (experiment=quick) as it is now.
RENDERER_V0_COMMIT = "8c471b5"
RENDERER_V0_STORE = ROOT / "logs" / "ablation" / "eyes_renderer_v0_n20000.h5"
ON_RENDERER_V0 = ["~data.synthetic", f"+data.synthetic={{_target_:simgan.data.sources.StoreFile,path:{RENDERER_V0_STORE}}}"]
PAPER = ["experiment=quick", "model.refiner.padding=zeros", "model.loss=cross_entropy",
         "model.discriminator.spectral_norm=false", "model.diff_augment.enabled=false", "model.ema.enabled=false",
         "model.r1_gamma=0.0", "model.refiner.noise_channels=0", "model.refiner_optimizer.lr=1e-4",
         "model.discriminator_optimizer.lr=1e-4"]
REFLECT = [*PAPER, "model.refiner.padding=reflect"]
EYE_VARIANTS: dict[str, list[str]] = {
    "paper": [*PAPER, *ON_RENDERER_V0],
    "reflect": [*REFLECT, *ON_RENDERER_V0],
    "lsgan": [*REFLECT, *ON_RENDERER_V0, "model.loss=lsgan"],
    "hinge": [*REFLECT, *ON_RENDERER_V0, "model.loss=hinge"],
    "spectral_norm": [*REFLECT, *ON_RENDERER_V0, "model.discriminator.spectral_norm=true"],
    "diff_augment": [*REFLECT, *ON_RENDERER_V0, "model.diff_augment.enabled=true"],
    "ema": [*REFLECT, *ON_RENDERER_V0, "model.ema.enabled=true"],
    "r1": [*REFLECT, *ON_RENDERER_V0, "model.r1_gamma=1.0"],
    "ttur": [*REFLECT, *ON_RENDERER_V0, "model.discriminator_optimizer.lr=4e-4"],
    "noise": [*REFLECT, *ON_RENDERER_V0, "model.refiner.noise_channels=2"],
    "combined_v1": [*REFLECT, *ON_RENDERER_V0, "model.refiner.noise_channels=2", "model.diff_augment.enabled=true",
                    "model.ema.enabled=true"],
    "geometry": REFLECT,
    "shipped": ["experiment=quick"],
}


def ensure_renderer_v0_store() -> None:
    """Renders the 20,000 default eyes with the renderer of ``RENDERER_V0_COMMIT`` (from git), once."""
    if RENDERER_V0_STORE.is_file():
        return
    import importlib.util
    import tempfile

    source = subprocess.check_output(["git", "show", f"{RENDERER_V0_COMMIT}:src/simgan/data/simulators/eyes.py"],
                                     cwd=ROOT, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eyes_v0.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("eyes_v0", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        images, labels = module.render_eyes(20000, 36, 60, seed=0)
    from simgan.data.store import write_store

    RENDERER_V0_STORE.parent.mkdir(parents=True, exist_ok=True)
    write_store(RENDERER_V0_STORE, images, labels, pixel_range=(0, 255),
                attrs={"source_format": "rendered", "source_path": f"{RENDERER_V0_COMMIT}:src/simgan/data/simulators/eyes.py"})


# The figures in docs/evaluation.md, in the order a reader wants them.
COLUMNS = [
    ("c2st_refined_acc", "C2ST refined", "{:.3f}"), ("c2st_synthetic_acc", "C2ST raw", "{:.3f}"),
    ("kid_ratio", "KID refined / raw", "{:.2f}"), ("pupil_shift_px_at_55_mean", "pupil shift px@55", "{:.2f}"),
    ("gaze_drift_deg_mean", "gaze drift deg", "{:.2f}"), ("border_step_signed_refined", "border step", "{:+.1f}"),
    ("train_s", "train s", "{:.0f}"), ("eval_s", "eval s", "{:.0f}"),
]


def run(cmd: list[str], log: Path) -> float:
    """Runs ``cmd`` from the repository root, output to ``log``; returns its wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as f:
        code = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"error: {' '.join(cmd)} exited {code}; see {log}")
    return time.monotonic() - start


def train_and_evaluate(name: str, overrides: list[str], seed: int, out: Path, eval_overrides: list[str],
                       read_only: bool = False) -> dict:
    """The evaluation summary of one (variant, seed), training and evaluating what is missing
    unless ``read_only`` (then only what exists is read: another run may still be writing)."""
    run_dir = out / name / f"s{seed}"
    metrics_path = run_dir / "eval" / "metrics.json"
    times_path = run_dir / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    if read_only:
        return _with_ratios({**json.loads(metrics_path.read_text())["summary"], **times})
    if "train_s" not in times:  # a finished training records its time; a killed one is run again
        times["train_s"] = run([sys.executable, "src/train.py", *overrides, f"seed={seed}", "logger=csv",
                                "task_name=ablation", f"hydra.run.dir={run_dir}"], run_dir / "train.out")
        times_path.write_text(json.dumps(times))
    if not metrics_path.is_file():
        times["eval_s"] = run([sys.executable, "src/evaluate.py", f"ckpt_path={run_dir}/checkpoints/last.ckpt",
                               f"seed={seed}", f"hydra.run.dir={run_dir}/eval", "show_progress=false",
                               *eval_overrides], run_dir / "eval.out")
        times_path.write_text(json.dumps(times))
    summary = json.loads(metrics_path.read_text())["summary"]
    return _with_ratios({**summary, **times})


def _with_ratios(summary: dict) -> dict:
    if summary.get("kid_synthetic"):
        summary["kid_ratio"] = summary["kid_refined"] / summary["kid_synthetic"]
    return summary


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} +/- {fmt.format(statistics.stdev(values))}"


def table(results: dict[str, list[dict]]) -> str:
    head = "| variant | seeds | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rows = [head, "|" + " --- |" * (len(COLUMNS) + 2)]
    for name, runs in results.items():
        cells = [_cell([r[key] for r in runs if key in r], fmt) for key, _, fmt in COLUMNS]
        rows.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    real = [r["border_step_signed_real"] for runs in results.values() for r in runs if "border_step_signed_real" in r]
    if real:
        rows.append(f"\nBorder step (signed, outer pixel ring minus the next, grey levels) of the held-out real "
                    f"eyes: {statistics.mean(real):+.1f}.")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", help="variant names to run (default: all)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[,OVERRIDE...]",
                        help="an extra variant: the reflect variant plus these overrides")
    parser.add_argument("--eval", nargs="*", default=["n_images=500"],
                        help="overrides for every src/evaluate.py run (default: the 500 held-out real eyes)")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "ablation")
    parser.add_argument("--table-only", action="store_true", help="print the table of the runs that exist")
    args = parser.parse_args()
    variants = dict(EYE_VARIANTS)
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        variants[name] = [*REFLECT, *overrides.split(",")]
    names = args.only or list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        sys.exit(f"error: unknown variant(s) {unknown}; known: {', '.join(variants)}")
    os.environ.setdefault("SIMGAN_ROOT", str(ROOT))
    if not args.table_only and any(ON_RENDERER_V0[1] in variants[n] for n in names):
        ensure_renderer_v0_store()
    results: dict[str, list[dict]] = {}
    for name in names:
        for seed in args.seeds:
            done = (args.out / name / f"s{seed}" / "eval" / "metrics.json").is_file()
            if args.table_only and not done:
                continue
            print(f"{name} seed {seed}: {'done' if done else 'training + evaluating'}", flush=True)
            results.setdefault(name, []).append(
                train_and_evaluate(name, variants[name], seed, args.out, args.eval, read_only=args.table_only))
    text = table(results)
    (args.out / "table.md").parent.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
