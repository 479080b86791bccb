"""The platform: :class:`simgan.module.SimGAN` driven by a Lightning ``Trainer``.

The module gets the reference's nets, optimizers and a schedule that is adversarial
from the first step with the same K_g:K_d (paper Algorithm 1), and each window is one
``Trainer.fit`` over the same in-memory loaders, zipped by Lightning's
``CombinedLoader`` as the datamodule does. A callback observes every batch (its
``on_train_batch_start`` comes after the batch is fetched, so a step's time includes
the fetch of the next one, the step, logging and every hook). The Trainer is as a
training run makes it (``conf/trainer/default.yaml``) with a CSV logger, minus
checkpoints, validation and the progress bar.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import CombinedLoader

from simgan.bench.reference import PlainLoop, net_configs, optimizer_config
from simgan.bench.settings import BenchSettings, Variant
from simgan.module import SimGAN
from simgan.schedule import REFINER

_LOSS_KEY = {REFINER: "train/r_loss"}
_D_LOSS_KEY = "train/d_loss"


class _Observe(Callback):
    def __init__(self, window):
        self.window = window
        self.network = REFINER

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.network = module.schedule.network
        self.window.before_step(batch_idx, self.network)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        key = _LOSS_KEY.get(self.network, _D_LOSS_KEY)
        self.window.after_step(batch_idx, self.network, trainer.callback_metrics.get(key))


def build_module(s: BenchSettings, variant: Variant) -> SimGAN:
    nets = net_configs(s)
    torch.manual_seed(s.seed)  # as the reference: same initial weights
    return SimGAN(
        refiner=nets["refiner"], discriminator=nets["discriminator"], regularizer=nets["regularizer"],
        image_shape=list(s.image_shape), lambda_reg=PlainLoop.lambda_reg, history_size=s.history_size,
        schedule={"refiner_pretrain_steps": 0, "discriminator_pretrain_steps": 0, "adversarial_steps": 10**9,
                  "k_g": PlainLoop.k_g, "k_d": PlainLoop.k_d},
        refiner_optimizer=optimizer_config(s, variant.fused),
        discriminator_optimizer=optimizer_config(s, variant.fused),
        channels_last=variant.channels_last, compile=variant.compile,
    )


class PlatformLoop:
    impl = "platform"

    def __init__(self, s: BenchSettings, variant: Variant, device: torch.device, workdir: Path):
        self.s, self.variant, self.device, self.workdir = s, variant, device, Path(workdir)
        self.module = build_module(s, variant)
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    def run(self, loaders: dict, window) -> None:
        steps = len(loaders["synthetic"])
        trainer = Trainer(
            accelerator="gpu" if self.device.type == "cuda" else "cpu", devices=1,
            precision="bf16-mixed" if self.variant.bf16 else "32-true",
            max_steps=steps, max_epochs=-1, benchmark=self.device.type == "cuda",
            # the platform's default logging interval (conf/trainer/default.yaml); every step
            # where the losses are recorded (untimed), as a module may log only on logged steps
            logger=CSVLogger(self.workdir, name=self.variant.name),
            log_every_n_steps=1 if window.record_losses else 10,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0, callbacks=[_Observe(window)],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "few batches per epoch" and the like: expected here
            trainer.fit(self.module, train_dataloaders=CombinedLoader(loaders, mode="max_size_cycle"))
