"""Train a SimGAN refiner (Shrivastava et al., CVPR 2017) with Lightning + Hydra.

    python src/train.py                                        # quick CPU default, embedded eyes
    python src/train.py experiment=gaze trainer.devices=4      # paper-scale gaze run on 4 GPUs
    python src/train.py experiment=gaze trainer=cpu data.batch_size=64
    python src/train.py regularizer=rgb_mean model.lambda_reg=0.5
    python src/train.py regularizer=vgg regularizer.weights_path=/path/to/vgg16.pth
    python src/train.py logger=csv                             # no W&B at all
    python src/train.py logger.wandb.offline=false             # W&B online (opt-in)
    python src/train.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # resume (exact)
    python src/train.py ckpt_path=last                         # resume this task's newest run
    python src/train.py -m model.lambda_reg=0.1,1.0 model.schedule.k_g=2,5      # sweep

Config: ``conf/train.yaml`` and its groups; every run writes to ``logs/train/runs/<date>_<time>/``.
SIGTERM / Ctrl-C saves ``checkpoints/last.ckpt`` and prints the command that resumes; a
NaN stops the run keeping the last good checkpoint (docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("SIMGAN_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from simgan.cli_entry import train_task  # noqa: E402  (the body `simgan-train` runs too)
from simgan.utils.cli import task_wrapper  # noqa: E402


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@task_wrapper
def main(cfg: DictConfig) -> float | None:
    return train_task(cfg)


if __name__ == "__main__":
    main()
