"""Refine a labeled synthetic store with a trained SimGAN refiner; the labels are kept.

    python src/refine.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt \
        input=data/cache/eyes_36x60_n20000_s0_<hash>.h5 output=data/refined/eyes.h5
    python src/refine.py ckpt_path=... input=... output=... trainer=gpu batch_size=1024
    python src/refine.py ckpt_path=... input=... output=... trainer=ddp trainer.devices=4
    python src/refine.py ckpt_path=... input=... output=... trainer=ddp_sim     # 2 CPU processes
    python src/refine.py ckpt_path=... input=... output=... resume=true         # after an interruption
    python src/refine.py ckpt_path=... input=... output=... overwrite=true      # replace the output
    python src/refine.py ckpt_path=... input=<35x55 store> output=... allow_size_mismatch=true

Config: ``conf/refine.yaml`` (+ ``conf/trainer/``); run dir ``logs/refine/runs/<date>_<time>/``.
Output: a store in the input's layout (dtype, pixel_range, every label), with provenance
attributes, and ``<output>.png`` (input | refined). See docs/refine.md.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("SIMGAN_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from simgan.cli_entry import refine_task  # noqa: E402  (the body `simgan-refine` runs too)
from simgan.utils.cli import task_wrapper  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="refine")
@task_wrapper
def main(cfg: DictConfig) -> None:
    refine_task(cfg)


if __name__ == "__main__":
    main()
