"""The LightningModule's optimizer steps over a short real run (CPU, tiny stores).

Checks the schedule's exact counts per phase, that a refiner step leaves D's weights
untouched and vice versa, and that D's loss never reaches R (refined batch detached).
"""

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer

from simgan.data.datamodule import SimGANDataModule
from simgan.data.simulators.eyes import render_eyes
from simgan.data.sources import StoreFile
from simgan.data.store import write_store
from simgan.module import SimGAN

IDENTITY = {"_target_": "simgan.regularizers.identity.Identity"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    images, labels = render_eyes(64, seed=1)
    write_store(root / "synthetic.h5", images, labels)
    real = np.random.default_rng(0).integers(0, 256, size=(48, 1, 36, 60), dtype=np.uint8)
    write_store(root / "real.h5", real)
    return root


def make_datamodule(root) -> SimGANDataModule:
    return SimGANDataModule(StoreFile(root / "synthetic.h5"), StoreFile(root / "real.h5"),
                            channels=1, height=36, width=60, labels=["gaze", "pupil"], batch_size=8, val_fraction=0.1)


@pytest.fixture(scope="module")
def datamodule(stores):
    return make_datamodule(stores)


def small_simgan(**schedule) -> SimGAN:
    schedule = {"refiner_pretrain_steps": 1, "discriminator_pretrain_steps": 1, "adversarial_steps": 1, "k_g": 1,
                "k_d": 1, **schedule}
    return SimGAN(
        refiner={"_target_": "simgan.models.refiner.Refiner", "channels": 1, "width": 8, "num_blocks": 1},
        discriminator={"_target_": "simgan.models.discriminator.LocalDiscriminator", "channels": 1,
                       "widths": [8, 8, 8, 8]},
        regularizer=IDENTITY, image_shape=[1, 36, 60], lambda_reg=1.0, history_size=32, schedule=schedule,
        refiner_optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
        discriminator_optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    )


class StepAudit(Callback):
    """Records which network each batch changed, and whether R got gradients in D steps."""

    def __init__(self):
        self.changed: list[str] = []
        self.refiner_grad_in_d_step = False

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.expected = module.schedule.network
        self.before = {n: [p.detach().clone() for p in getattr(module, n).parameters()]
                       for n in ("refiner", "discriminator")}
        if self.expected == "discriminator":
            for p in module.refiner.parameters():
                p.grad = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        changed = [n for n, params in self.before.items()
                   if any(not torch.equal(a, b) for a, b in zip(params, getattr(module, n).parameters()))]
        self.changed.append("+".join(changed))
        if self.expected == "discriminator":
            self.refiner_grad_in_d_step |= any(p.grad is not None for p in module.refiner.parameters())


def fit(module, datamodule, tmp_path, callbacks=()):
    trainer = Trainer(accelerator="cpu", max_steps=module.schedule.total_steps, max_epochs=-1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path,
                      callbacks=list(callbacks))
    trainer.fit(module, datamodule=datamodule)
    return trainer


def test_exact_optimizer_steps_per_phase_and_isolation(datamodule, tmp_path):
    audit = StepAudit()
    module = small_simgan(refiner_pretrain_steps=3, discriminator_pretrain_steps=2, adversarial_steps=9, k_g=2, k_d=1)
    trainer = fit(module, datamodule, tmp_path, [audit])
    expected = ["refiner"] * 3 + ["discriminator"] * 2 + ["refiner", "refiner", "discriminator"] * 3
    assert audit.changed == expected  # each step moved exactly the scheduled network, nothing else
    assert trainer.global_step == 14  # one optimizer step per batch
    assert (module.schedule.refiner_steps, module.schedule.discriminator_steps) == (9, 5)
    assert not audit.refiner_grad_in_d_step
    assert len(module.history) == 5 * 4  # b/2 = 4 refined images stored per D step


def test_schedule_and_history_are_in_the_checkpoint(datamodule, tmp_path):
    module = small_simgan(refiner_pretrain_steps=1, discriminator_pretrain_steps=2, adversarial_steps=3, k_g=1, k_d=2)
    trainer = fit(module, datamodule, tmp_path)
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["simgan_schedule"]["step"] == 6
    assert int(ckpt["state_dict"]["history.filled"]) == len(module.history) > 0
    restored = SimGAN.load_from_checkpoint(path)
    assert restored.schedule.step == 6 and len(restored.history) == len(module.history)
    assert torch.equal(restored.history.images, module.history.images)


def _logged_rows(module, datamodule, tmp_path, every: int) -> dict[int, dict[str, str]]:
    import csv

    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(3)
    trainer = Trainer(accelerator="cpu", max_steps=module.schedule.total_steps, max_epochs=-1,
                      logger=CSVLogger(tmp_path, name=f"every{every}"), log_every_n_steps=every,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule)
    with open(trainer.logger.log_dir + "/metrics.csv") as f:
        return {int(row["step"]): {k: v for k, v in row.items() if k.startswith("train/") and v}
                for row in csv.DictReader(f)}


def test_metrics_are_logged_at_the_written_steps_with_the_values_of_those_steps(stores, tmp_path):
    """The module logs only the steps the logger writes (log_every_n_steps), yet every written row
    is the row logging every step writes: each key at its latest value. With K_g = K_d = 1 and
    every 2nd step written, the written adversarial steps are all discriminator steps, and
    their rows must still carry the refiner loss of the step before."""
    schedule = dict(refiner_pretrain_steps=2, discriminator_pretrain_steps=2, adversarial_steps=8, k_g=1, k_d=1)
    torch.manual_seed(0)
    every_step = _logged_rows(small_simgan(**schedule), make_datamodule(stores), tmp_path, every=1)
    torch.manual_seed(0)
    every_second = _logged_rows(small_simgan(**schedule), make_datamodule(stores), tmp_path, every=2)
    assert sorted(every_second) == [1, 3, 5, 7, 9, 11] and len(every_step) == 12
    for step, row in every_second.items():
        assert row == every_step[step], step
    assert every_second[11]["train/r_loss"] == every_step[10]["train/r_loss"]  # R stepped at 10, D at 11
