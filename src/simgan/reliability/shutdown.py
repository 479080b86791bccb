"""Clean shutdown: SIGTERM / SIGINT stop training at a step boundary, after saving a checkpoint.

A signal that lands in the middle of a step (Python raises KeyboardInterrupt wherever it
is; Lightning's SLURM handler saves from inside the handler) can leave a half-updated
state: the optimizer stepped but the schedule not advanced, the history not pushed.
So while training runs, this callback replaces the handlers of

- SIGTERM and SIGINT (preemption, ``scancel``, ``kill``, Ctrl-C): the handler only
  records the signal; at the end of the current step the callback writes
  ``<checkpoints>/last.ckpt`` and stops the Trainer. ``simgan.training`` then prints
  how to resume and the process exits with ``128 + signum``. A second Ctrl-C aborts at
  once without saving (the atomic writer keeps the previous ``last.ckpt`` whole).
- the SLURM requeue signal, only when Lightning's auto-requeue handler is installed
  (``SLURMEnvironment(auto_requeue=True)``, SIGUSR1 by default): the signal is
  recorded and Lightning's own handler (``hpc_ckpt_<n>.ckpt`` + ``scontrol requeue``)
  runs at the end of the step, so its checkpoint is consistent too. Training goes on
  until SLURM's SIGTERM, handled as above.

Under DDP the ranks agree at every step (one small all-reduce) on whether any of them
got a signal, so they all save (a collective) and stop at the same step. The previous
handlers are put back when training ends, fails or is torn down.

Work outside the training loop (a dataset conversion, a refine run) uses
:class:`~simgan.reliability.signals.StopSignals` the same way: the handler only records the signal (Python would
otherwise raise KeyboardInterrupt wherever it is, e.g. inside a weakref callback of
h5py, where it is printed and swallowed), and the work loop calls
:meth:`StopSignals.raise_if_stopped` where stopping leaves nothing half-done.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, Callable

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from simgan.reliability.signals import StopSignals, restore_handlers


class GracefulShutdown(Callback):
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.stopped_by: int | None = None  # the signal that stopped training, once it did
        self.checkpoint_path: Path | None = None
        self._stops = StopSignals("saving a checkpoint after the current step, then stopping",
                                  "aborting without saving a checkpoint")
        self._pending_deferred = 0
        self._handled_deferred: set[int] = set()
        self._previous: dict[int, Any] = {}

    # ---------------------------------------------------------------- handlers
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled or threading.current_thread() is not threading.main_thread():
            return
        self._stops.__enter__()
        for signum in _requeue_signals(trainer):
            if callable(signal.getsignal(signum)):
                self._install(signum, self._on_deferred_signal)

    def _install(self, signum: int, handler: Callable) -> None:
        self._previous.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, handler)

    def _restore(self) -> None:
        self._stops.__exit__()
        restore_handlers(self._previous)

    def _on_deferred_signal(self, signum: int, frame: Any) -> None:
        if signum not in self._handled_deferred:
            self._pending_deferred = signum

    # ---------------------------------------------------------------- step boundary
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        stop, deferred = self._stops.received, self._pending_deferred
        if trainer.world_size > 1:  # every rank must save (a collective) at the same step
            flags = torch.tensor([stop, deferred], dtype=torch.float32, device=pl_module.device)
            stop, deferred = (int(v) for v in trainer.strategy.reduce(flags, reduce_op="max").tolist())
        if deferred and deferred not in self._handled_deferred:
            self._handled_deferred.add(deferred)
            self._pending_deferred = 0
            handler = self._previous.get(deferred)
            if callable(handler):
                handler(deferred, None)
        if stop:
            self.checkpoint_path = save_last_checkpoint(trainer)
            self.stopped_by = stop
            trainer.should_stop = True

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._restore()


def save_last_checkpoint(trainer: Trainer) -> Path:
    """Writes ``last.ckpt`` where the ModelCheckpoint keeps it (or ``<run>/checkpoints``)."""
    ckpt = trainer.checkpoint_callback
    directory = Path(ckpt.dirpath) if ckpt is not None and getattr(ckpt, "dirpath", None) else \
        Path(trainer.default_root_dir) / "checkpoints"
    name = getattr(ckpt, "CHECKPOINT_NAME_LAST", "last") + getattr(ckpt, "FILE_EXTENSION", ".ckpt")
    path = (directory / name).resolve()
    trainer.save_checkpoint(path)
    if ckpt is not None and hasattr(ckpt, "last_model_path"):
        # ModelCheckpoint would otherwise take this file for a stranger's and write last-v1.ckpt
        ckpt.last_model_path = str(path)
    return path


def _requeue_signals(trainer: Trainer) -> list[int]:
    env = getattr(getattr(trainer, "_accelerator_connector", None), "cluster_environment", None)
    if getattr(env, "auto_requeue", False) and getattr(env, "requeue_signal", None) is not None:
        return [env.requeue_signal]
    return []
