"""Rebuild only the refiner R from a training checkpoint (project issue 5).

A Lightning checkpoint of :class:`simgan.module.SimGAN` holds the whole GAN: both nets,
the history buffer, optimizer states, and in ``hyper_parameters`` the Hydra configs
(``_target_`` dicts) the nets were built from. Refining needs R alone, so R is rebuilt
from ``hyper_parameters["refiner"]`` and loaded from the ``refiner.*`` keys of the state
dict. Nothing else is instantiated: the regularizer (e.g. a VGG whose weights file
exists only on the training machine) and the discriminator are never touched.

Checkpoints are pickles (Lightning's own format; ``weights_only`` loading fails on the
OmegaConf objects Lightning stores in them): refine only checkpoints you trust.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from simgan.errors import DataError

# torch.compile wraps a module as ``_orig_mod``; this project keeps compiled callables off
# the module tree (module.py), but checkpoints from other set-ups may still carry it.
_COMPILE_PREFIX = "_orig_mod."


def sha256sum(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path) -> dict:
    # mmap first: the history buffer and optimizer states are then never read into
    # memory; the old (non-zip) serialization cannot be mmapped, so retry without.
    for mmap in (True, False):
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
            break
        except Exception as err:  # truncated zip, not a torch file, pickle of a missing class...
            if mmap and "mmap" in str(err):
                continue
            raise DataError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"{path}: not a Lightning checkpoint (holds a {type(checkpoint).__name__})")
    return checkpoint


def refiner_state(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The ``refiner.*`` entries, prefix removed (and any ``_orig_mod.`` from torch.compile)."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace(_COMPILE_PREFIX, "")
        if key.startswith("refiner."):
            out[key[len("refiner."):]] = value
    return out


def load_refiner(ckpt_path: str | os.PathLike, hash_file: bool = True) -> tuple[nn.Module, dict]:
    """R from a SimGAN checkpoint, in eval mode on CPU, and what is known about it.

    Returns ``(refiner, info)`` with info keys ``path``, ``sha256`` (None unless
    ``hash_file``), ``image_shape`` ([C, H, W] R was trained on), ``channels``,
    ``refiner`` (its ``_target_`` config), ``global_step``. Raises :class:`DataError`
    naming the file for a missing, unreadable or non-SimGAN checkpoint, and for
    weights that do not fit the architecture its hyper-parameters describe.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    checkpoint = _read(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    config = hparams.get("refiner")
    if not isinstance(config, dict) or "_target_" not in config or "state_dict" not in checkpoint:
        raise DataError(f"{path}: not a SimGAN checkpoint (no hyper_parameters.refiner with a _target_ "
                        "and state_dict); refine needs a checkpoint written by src/train.py")
    state = refiner_state(checkpoint["state_dict"])
    if not state:
        raise DataError(f"{path}: checkpoint has no refiner.* weights in its state_dict")
    try:
        refiner = instantiate(dict(config))
    except Exception as err:
        raise DataError(f"{path}: cannot build the refiner {config['_target_']} from its hyper-parameters "
                        f"({type(err).__name__}: {err})") from None
    try:
        refiner.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise DataError(f"{path}: refiner weights do not fit the architecture in its hyper-parameters "
                        f"({config}): {' '.join(line.strip() for line in first[:3])}") from None
    refiner.eval().requires_grad_(False)
    image_shape = [int(v) for v in hparams.get("image_shape") or []]
    channels = getattr(refiner, "channels", None) or (image_shape[0] if image_shape else None)
    info = {
        "path": str(path.resolve()),
        "sha256": sha256sum(path) if hash_file else None,
        "image_shape": image_shape or None,
        "channels": int(channels) if channels is not None else None,
        "refiner": dict(config),
        "global_step": int(checkpoint.get("global_step", -1)),
    }
    del checkpoint  # drop the mmapped rest (history buffer, optimizer states) now
    return refiner, info
