"""Checkpoint writes that are atomic and never persist a diverged (NaN/inf) state.

Every checkpoint Lightning writes (ModelCheckpoint's, the clean-shutdown one, SLURM's
``hpc_ckpt``) goes through the Trainer's CheckpointIO; ``simgan.training`` installs this
one. For a local path it writes ``.<name>.<pid>.partial`` next to the target
(:mod:`simgan.reliability.partials`), fsyncs it, and ``os.replace``s it onto the target:
a process killed mid-write (preemption, OOM killer, a second Ctrl-C) leaves the previous
``last.ckpt`` intact and loadable, never a truncated one; the next write of that
checkpoint deletes the killed writer's partial file (and a resumed run, writing into a
new run dir, deletes those of the run it resumes: :mod:`simgan.reliability.resume`). A
full disk is one error naming the checkpoint (:mod:`simgan.reliability.disk`), the
previous file kept. (Lightning's default stages the file in the system temp dir and
moves it, which is a non-atomic copy when that dir is on another filesystem, and does
not fsync.) Remote paths (``s3://``...) keep Lightning's behaviour.

Before writing, every floating tensor of the weights, buffers (the history buffer) and
optimizer states is checked: a non-finite one raises :class:`NonFiniteError` instead,
so a diverged state never overwrites the last good checkpoint.

"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, ListConfig

from simgan.reliability import partials
from simgan.reliability.disk import no_space, out_of_space, require_space, short_torch_write
from simgan.errors import NonFiniteError
from simgan.reliability.finite import nonfinite_in_checkpoint

class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's CheckpointIO with atomic local writes that refuse a non-finite state.

    ``describe_step(checkpoint)`` names the step a refused state comes from in the
    message (training passes :func:`simgan.checkpoint.step_description`).
    """

    def __init__(self, describe_step: Callable[[dict], str] | None = None):
        super().__init__()
        self.describe_step = describe_step or (lambda checkpoint: f"step {checkpoint.get('global_step', '?')}")

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        bad = nonfinite_in_checkpoint(checkpoint)
        if bad is not None:
            raise NonFiniteError(self._refusal(checkpoint, bad, path))
        if storage_options is not None or not is_local_path(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, Path(path))

    def _refusal(self, checkpoint: dict, name: str, path) -> str:
        parts = name.split(".")
        network = parts[1] if parts[0] == "state_dict" and len(parts) > 1 else "optimizer"
        return (f"non-finite value (NaN/inf) in {name} at {self.describe_step(checkpoint)}, network {network}: "
                f"refusing to write checkpoint {path}; the previous checkpoint is kept. The run diverged: "
                "lower the learning rate or set model.grad_clip")


def is_local_path(path) -> bool:
    """A path on this machine's filesystem (``file://`` or no protocol), not ``s3://``, ``gs://``..."""
    text = str(path)
    return "://" not in text or text.startswith("file://")


def trainer_plugins(trainer_cfg: DictConfig, describe_step: Callable[[dict], str] | None = None) -> list:
    """The configured Trainer plugins plus this CheckpointIO, unless the config brings one."""
    configured = trainer_cfg.get("plugins") or []
    configured = list(configured) if isinstance(configured, (ListConfig, list)) else [configured]
    plugins = [instantiate(p) if isinstance(p, DictConfig) and "_target_" in p else p for p in configured]
    strategy = trainer_cfg.get("strategy")
    if any(isinstance(p, CheckpointIO) for p in plugins) or (
            isinstance(strategy, DictConfig) and strategy.get("checkpoint_io") is not None):
        return plugins
    return [*plugins, AtomicCheckpointIO(describe_step)]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a fsynced temp file in the same dir and ``os.replace``.

    The temp file is :func:`simgan.reliability.partials.partial_path`'s; killed writers'
    ones are deleted first. A full disk (checked first, or met during the write) is a
    :class:`DataError` naming ``path``; the previous file stays.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partials.remove_orphans(path)
    kept = "the previous checkpoint is kept" if path.exists() else ""
    require_space(path, _tensor_bytes(obj), "a checkpoint", kept)
    tmp = partials.partial_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)) and (out_of_space(err) or short_torch_write(err)):
            raise no_space(path, "a checkpoint", kept=kept) from None
        raise
    _fsync_dir(path.parent)


def _tensor_bytes(obj: Any) -> int:
    """What the tensors of ``obj`` take (a checkpoint's size, give or take the pickled rest)."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


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
