"""Shared by the reliability tests: a tiny real training config and its logged losses.

Not a test module. The config is the real ``conf/train.yaml`` (``debug=default``) with
tiny nets and tiny streams (so both stream epochs wrap several times in 14 steps), a
checkpoint after every step, and a metrics.csv row for every step.
"""

from __future__ import annotations

import csv
from pathlib import Path

# 14 steps: R pretrain 1-3, D pretrain 4-6, then cycles R R D (7-9, 10-12, 13-14).
# The history (16 = 4 D steps x b/2) fills at step 9, the 4th D step.
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4}
SCHEDULE = {"refiner_pretrain_steps": 3, "discriminator_pretrain_steps": 3, "adversarial_steps": 8, "k_g": 2, "k_d": 1}
TOTAL_STEPS = sum(v for k, v in SCHEDULE.items() if k.endswith("steps"))
TINY = [
    "debug=default", "logger=csv",
    "model.refiner.width=8", "model.refiner.num_blocks=1", "model.discriminator.widths=[8,8,8,8]",
    "model.history_size=16", "data.batch_size=8", "data.synthetic.n=40", "data.real.n=24",
    *(f"model.schedule.{k}={v}" for k, v in SCHEDULE.items()),
    "trainer.log_every_n_steps=1", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
    "callbacks.model_checkpoint.every_n_train_steps=1", "callbacks.model_checkpoint.save_top_k=-1",
]


def tiny_cfg(compose_train, run_dir: Path, *overrides: str):
    """The tiny config, writing into ``run_dir`` (a Hydra-like run dir under logs/<task>/runs/)."""
    from omegaconf import open_dict

    cfg = compose_train(*TINY, *overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(run_dir.parents[2])
    return cfg


def run_dir(root: Path, name: str, task: str = "debug") -> Path:
    path = root / "logs" / task / "runs" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# What each kind of step logs. Lightning repeats an on_step key's last value in later
# rows that do not log it (a D step's row shows the last R step's r_loss), and a resumed
# process has no such stale values: compare what the step itself produced.
R_KEYS = ("train/r_loss", "train/r_reg", "train/r_adv", "train/d_acc_refined_in_r_step")
D_KEYS = ("train/d_loss", "train/d_acc_real", "train/d_acc_refined", "train/history_filled")
NETWORKS = ["R"] * 3 + ["D"] * 3 + ["R", "R", "D"] * 2 + ["R", "R"]


def train_losses(run: Path) -> dict[int, dict[str, str]]:
    """What step i (0-based logged step) produced, from ``<run>/csv/metrics.csv``, as exact text."""
    rows: dict[int, dict[str, str]] = {}
    with open(run / "csv" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            keys = (R_KEYS if NETWORKS[step] == "R" else D_KEYS) + ("train/phase", "train/k_g")
            values = {k: row[k] for k in keys if row.get(k, "") != ""}
            if values:
                rows.setdefault(step, {}).update(values)
    return rows


class SignalAt:
    """A test callback that sends this process a real signal during step ``step`` (1-based).

    ``when="batch_start"``: just before the step; ``"mid_step"``: inside it, right before
    the optimizer step (where an undeferred handler would see a half-done step).
    """

    def __new__(cls, *args, **kwargs):
        # Built lazily so that importing this helper does not import Lightning.
        from lightning.pytorch import Callback

        class _SignalAt(Callback):
            def __init__(self, step: int, signum: str = "SIGINT", when: str = "batch_start"):
                import signal

                self.step, self.signum, self.when = int(step), getattr(signal, signum), when
                self.sent = False

            def _send(self, trainer) -> None:
                import os

                if not self.sent and trainer.global_step == self.step - 1:
                    self.sent = True
                    os.kill(os.getpid(), self.signum)

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if self.when == "batch_start":
                    self._send(trainer)

            def on_before_optimizer_step(self, trainer, pl_module, optimizer):
                if self.when == "mid_step":
                    self._send(trainer)

        return _SignalAt(*args, **kwargs)


class PoisonInput:
    """A test callback that puts a NaN into the synthetic batch of step ``step`` (1-based)."""

    def __new__(cls, *args, **kwargs):
        from lightning.pytorch import Callback

        class _PoisonInput(Callback):
            def __init__(self, step: int):
                self.step = int(step)

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.global_step == self.step - 1:
                    batch["synthetic"]["image"][0, 0, 0, 0] = float("nan")

        return _PoisonInput(*args, **kwargs)


# ---------------------------------------------------------------- fault tests (tests/test_faults_*.py)


def assert_one_error_line(stderr: str, *words: str) -> str:
    """Exactly one ``error: ...`` line holding every word, and no traceback; returns that line."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def small_disk(folder: Path, size: str = "2m"):
    """A context manager: a ``size`` tmpfs mounted on ``folder`` (a full disk on demand), unmounted after.

    Skips the test with the reason when mounting is not permitted (not root, no tmpfs).
    """
    import contextlib
    import subprocess

    import pytest

    @contextlib.contextmanager
    def mounted():
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a {size} tmpfs to fill up ({(result.stderr or result.stdout).strip()})")
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)

    return mounted()


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Writes a filler file into ``folder`` so that about ``leave_bytes`` stay free."""
    import os

    st = os.statvfs(folder)
    filler = folder / "filler.bin"
    size = max(st.f_bavail * st.f_frsize - leave_bytes, 0)
    with open(filler, "wb") as f:
        f.write(b"\0" * size)
    return filler


def dead_pid() -> int:
    """The pid of a process that has just exited (a real one, for 'killed writer' files)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def tiny_checkpoint(root: Path, store: Path, shape=(1, 36, 60)) -> Path:
    """A real Lightning checkpoint of a tiny SimGAN after 2 optimizer steps on ``store``'s images.

    In-process (a few seconds): a plain loader of {"synthetic", "real"} batches, the
    module's input and nothing more.
    """
    import torch
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader

    from simgan.data.store import StoreDataset
    from simgan.module import SimGAN

    synthetic = StoreDataset(store)
    real = torch.rand(8, *shape) * 2 - 1
    batches = [{"synthetic": {"image": torch.stack([synthetic[i]["image"] for i in range(8 * b, 8 * b + 8)])},
                "real": {"image": real}} for b in range(2)]
    module = SimGAN(
        refiner={"_target_": "simgan.models.refiner.Refiner", "channels": shape[0], "width": 4, "num_blocks": 1},
        discriminator={"_target_": "simgan.models.discriminator.LocalDiscriminator", "channels": shape[0],
                       "widths": [4, 4, 4, 4]},
        regularizer={"_target_": "simgan.regularizers.identity.Identity"}, image_shape=list(shape), history_size=16,
        lambda_reg=1.0,
        schedule={"refiner_pretrain_steps": 1, "discriminator_pretrain_steps": 1, "adversarial_steps": 0, "k_g": 1,
                  "k_d": 1},
        refiner_optimizer=ADAM, discriminator_optimizer=ADAM)
    trainer = Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0, default_root_dir=root)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    trainer.save_checkpoint(root / "last.ckpt")
    return root / "last.ckpt"
