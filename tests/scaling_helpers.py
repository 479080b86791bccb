"""Shared by the DDP and sweep tests: real runs of ``src/train.py`` and what they leave behind.

Not a test module. :class:`RankRecorder` is a test callback a subprocess run loads with
``+callbacks.rank_recorder._target_=scaling_helpers.RankRecorder`` (``tests/`` on
PYTHONPATH): every rank writes what it trained and saw to ``<dirpath>/rank<r>.pt``.
:func:`wandb_run_group` reads the group an offline W&B run was created with from its
``run-<id>.wandb`` file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_train(cwd: Path, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python src/train.py <overrides>`` in ``cwd``, one thread per process, W&B offline."""
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "SIMGAN_ROOT": str(ROOT), "PYTHONPATH": path}
    return subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), *overrides], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


class RankRecorder:
    """A test callback: per rank, the network of every step, the data indices, D's logged loss,
    the history at the start (after a resume's restore) and the weights and history at the end."""

    def __new__(cls, *args, **kwargs):
        # Built lazily so that importing this helper does not import Lightning.
        from lightning.pytorch import Callback

        class _RankRecorder(Callback):
            def __init__(self, dirpath: str):
                self.dirpath = Path(dirpath)
                self.record: dict = {"networks": [], "k_g": [], "synthetic": [], "real": [], "d_loss": {}}

            def on_train_start(self, trainer, pl_module):
                dm = trainer.datamodule
                self.record.update(
                    rank=trainer.global_rank, world_size=trainer.world_size,
                    start_history=(pl_module.history.images.clone(), int(pl_module.history.filled)),
                    batches_per_epoch={s: dm.train_sampler(s).batches_per_epoch for s in ("synthetic", "real")})

            def _last_batch(self, dm, stream: str) -> list[int]:
                # the store rows of the stream's latest batch, from its sampler and position
                rows = dm.splits[f"{stream}_train"].indices
                return [int(rows[i]) for i in dm.train_sampler(stream).batch(dm.batches_consumed[stream] - 1)]

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                self.record["networks"].append(str(pl_module.schedule.network))
                self.record["k_g"].append(pl_module.schedule.k_g)
                self.record["synthetic"].append(self._last_batch(trainer.datamodule, "synthetic"))
                self.real_before = trainer.datamodule.batches_consumed["real"]

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                dm = trainer.datamodule
                drew_real = dm.batches_consumed["real"] - self.real_before
                assert drew_real == (self.record["networks"][-1] == "discriminator"), "real batch on a refiner step"
                if drew_real:
                    self.record["real"].append(self._last_batch(dm, "real"))
                if self.record["networks"][-1] == "discriminator":
                    self.record["d_loss"][trainer.global_step] = float(trainer.callback_metrics["train/d_loss"])

            def on_train_end(self, trainer, pl_module):
                import torch

                self.record.update(
                    refiner={k: v.clone() for k, v in pl_module.refiner.state_dict().items()},
                    discriminator={k: v.clone() for k, v in pl_module.discriminator.state_dict().items()},
                    end_history=(pl_module.history.images.clone(), int(pl_module.history.filled)))
                self.dirpath.mkdir(parents=True, exist_ok=True)
                torch.save(self.record, self.dirpath / f"rank{trainer.global_rank}.pt")

        return _RankRecorder(*args, **kwargs)


def _wandb_records(path: Path):
    """The records of a ``.wandb`` file (W&B's LevelDB-style log: 7-byte header, 32 KiB blocks,
    each record ``crc32:4 length:2 type:1 data``, types FULL=1 FIRST=2 MIDDLE=3 LAST=4)."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left_in_block = block - pos % block
        if left_in_block < 7:  # block trailer padding
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def wandb_run_group(offline_run_dir: Path) -> str:
    """The W&B group of an offline run, as W&B stored it (its first ``run`` record)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (run_file,) = offline_run_dir.glob("run-*.wandb")
    for data in _wandb_records(run_file):
        record = pb.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "run":
            return record.run.run_group
    raise AssertionError(f"no run record in {run_file}")
