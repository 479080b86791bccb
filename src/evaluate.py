"""Evaluate a trained SimGAN refiner (Shrivastava et al., CVPR 2017): realism, labels, downstream.

    python src/evaluate.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt
    python src/evaluate.py ckpt_path=... data=digits                 # name the data explicitly
    python src/evaluate.py ckpt_path=... logger=wandb                # + W&B (offline by default)
    python src/evaluate.py ckpt_path=... device=cuda n_images=2000   # bigger, on a GPU
    python src/evaluate.py ckpt_path=... kid.enabled=false c2st.max_epochs=3   # quick look

Config: ``conf/evaluate.yaml``; every run writes to ``logs/evaluate/runs/<date>_<time>/``:
``metrics.json``, ``report.md`` and PNG figures. See docs/evaluation.md for the metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("SIMGAN_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from simgan.cli_entry import evaluate_task  # noqa: E402  (the body `simgan-evaluate` runs too)
from simgan.utils.cli import task_wrapper  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
@task_wrapper
def main(cfg: DictConfig) -> None:
    evaluate_task(cfg)


if __name__ == "__main__":
    main()
