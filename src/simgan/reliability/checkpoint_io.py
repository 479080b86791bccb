"""Checkpoint writes that are atomic and never persist a diverged (NaN/inf) state.

Every checkpoint Lightning writes (ModelCheckpoint's, the clean-shutdown one, SLURM's
``hpc_ckpt``) goes through the Trainer's CheckpointIO; ``simgan.training`` installs this
one. For a local path it writes ``.<name>.<pid>.partial`` next to the target, fsyncs
it, and ``os.replace``s it onto the target: a process killed mid-write (preemption, OOM
killer, a second Ctrl-C) leaves the previous ``last.ckpt`` intact and loadable, never a
truncated one; the next write of that checkpoint deletes the killed writer's partial file. (Lightning's default stages the file in the system temp dir and moves
it, which is a non-atomic copy when that dir is on another filesystem, and does not
fsync.) Remote paths (``s3://``...) keep Lightning's behaviour.

Before writing, every floating tensor of the weights, buffers (the history buffer) and
optimizer states is checked: a non-finite one raises :class:`NonFiniteError` instead,
so a diverged state never overwrites the last good checkpoint.

Test hook: ``SIMGAN_TEST_CHECKPOINT_PAUSE=<seconds>`` pauses in the middle of writing
when the target already exists (the dangerous case), so a test can kill the process
mid-write. Nothing else reads it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from omegaconf import DictConfig, ListConfig

from simgan.reliability.errors import NonFiniteError
from simgan.reliability.finite import nonfinite_in_checkpoint
from simgan.schedule import PhaseSchedule

PAUSE_ENV = "SIMGAN_TEST_CHECKPOINT_PAUSE"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        bad = nonfinite_in_checkpoint(checkpoint)
        if bad is not None:
            raise NonFiniteError(_refusal(checkpoint, bad, path))
        if storage_options is not None or not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, Path(path))


def trainer_plugins(trainer_cfg: DictConfig) -> list:
    """The configured Trainer plugins plus this CheckpointIO, unless the config brings one."""
    configured = trainer_cfg.get("plugins") or []
    configured = list(configured) if isinstance(configured, (ListConfig, list)) else [configured]
    plugins = [instantiate(p) if isinstance(p, DictConfig) and "_target_" in p else p for p in configured]
    strategy = trainer_cfg.get("strategy")
    if any(isinstance(p, CheckpointIO) for p in plugins) or (
            isinstance(strategy, DictConfig) and strategy.get("checkpoint_io") is not None):
        return plugins
    return [*plugins, AtomicCheckpointIO()]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a fsynced temp file in the same dir and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_partials(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    pause = float(os.environ.get(PAUSE_ENV, 0) or 0) if path.exists() else 0.0
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, _PausingWriter(f, pause) if pause else f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _remove_orphaned_partials(path: Path) -> None:
    """Deletes ``.<name>.<pid>.partial`` files of ``path`` left by writers that were killed.

    A writer killed mid-write (SIGKILL, OOM) cannot clean up: its partial file, as large
    as a checkpoint, would stay hidden in the run dir for good. Only files whose pid is
    no longer a running process go: a live writer (another run sharing the dir) keeps its own.
    """
    prefix, suffix = f".{path.name}.", ".partial"
    for candidate in path.parent.glob(f"{prefix}*{suffix}"):
        pid = candidate.name[len(prefix):-len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            candidate.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable (a power cut right after would otherwise lose it).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _PausingWriter:
    """A file wrapper that sleeps once after its first write (the test hook)."""

    def __init__(self, f, pause: float):
        self._f, self._pause = f, pause

    def write(self, data) -> int:
        n = self._f.write(data)
        if self._pause:
            self._f.flush()
            time.sleep(self._pause)
            self._pause = 0.0
        return n

    def flush(self) -> None:
        self._f.flush()


def _refusal(checkpoint: dict, name: str, path) -> str:
    parts = name.split(".")
    network = parts[1] if parts[0] == "state_dict" and len(parts) > 1 else "optimizer"
    step = checkpoint.get("global_step", "?")
    try:  # the phase of the step just done (the schedule already points at the next one)
        state = dict(checkpoint["simgan_schedule"])
        state["step"] = max(int(state["step"]) - 1, 0)
        phase = PhaseSchedule(**state).phase
    except (KeyError, TypeError, ValueError):
        phase = "?"
    return (f"non-finite value (NaN/inf) in {name} at step {step} (phase {phase}, network {network}): "
            f"refusing to write checkpoint {path}; the previous checkpoint is kept. The run diverged: "
            "lower the learning rate or set model.grad_clip")
