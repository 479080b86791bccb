"""Every N steps, a grid of fixed validation samples: synthetic | refined | real.

The same synthetic and real images are used at every step, so successive grids show
how refinement evolves: the first ``n_images`` of each validation split, topped up from
training (:func:`simgan.data.subsets.first_images`). Saved as PNG under ``<run dir>/images/`` and, when a W&B
logger is attached, logged there as ``images/refined_grid`` (``WandbLogger.log_image``:
``logger.experiment.add_image`` is TensorBoard-only). Only rank zero writes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from simgan.data.subsets import first_images
from simgan.utils.image_grid import save_grid


class RefinedImageGrid(Callback):
    def __init__(self, every_n_steps: int = 200, n_images: int = 16, dirpath: str | None = None):
        self.every_n_steps = every_n_steps
        self.n_images = n_images
        self.dirpath = dirpath
        self.synthetic: torch.Tensor | None = None
        self.real: torch.Tensor | None = None
        self.last_path: Path | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        splits = trainer.datamodule.splits
        self.synthetic, _ = first_images(splits, "synthetic", self.n_images)
        self.real, _ = first_images(splits, "real", self.n_images)
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "images")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.write(trainer, pl_module, f"grid_step{trainer.global_step:06d}.png")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.write(trainer, pl_module, "grid_final.png")

    @torch.no_grad()
    def write(self, trainer: Trainer, pl_module: LightningModule, name: str) -> None:
        if not trainer.is_global_zero or self.synthetic is None:
            return
        was_training = pl_module.training
        pl_module.eval()
        refined = pl_module(self.synthetic.to(pl_module.device))
        pl_module.train(was_training)
        path = Path(self.dirpath) / name
        image = save_grid([self.synthetic, refined, self.real], path)
        self.last_path = path
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="images/refined_grid", images=[image], step=trainer.global_step,
                                 caption=["synthetic | refined | real"])
