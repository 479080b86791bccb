"""Read a training checkpoint (checked), and rebuild only its refiner R from it.

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
from simgan.reliability.finite import first_nonfinite

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


# A run with ``model.ema.enabled`` keeps an average of R's weights beside R (simgan.ema);
# that average is the refiner the run validated and is the one to refine with.
_EMA_PREFIX, _REFINER_PREFIX = "refiner_ema.average.", "refiner."


def refiner_state(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """R's weights, prefix removed (and any ``_orig_mod.`` from torch.compile): the
    ``refiner_ema.average.*`` entries when the run kept a weight average, else ``refiner.*``."""
    keys = {key.replace(_COMPILE_PREFIX, ""): value for key, value in state_dict.items()}
    prefix = _EMA_PREFIX if any(key.startswith(_EMA_PREFIX) for key in keys) else _REFINER_PREFIX
    return {key[len(prefix):]: value for key, value in keys.items() if key.startswith(prefix)}


def read_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """A SimGAN checkpoint, read (mmapped) and checked; the one reader of train, refine and evaluate.

    Raises :class:`DataError` naming the file when it is missing, empty, truncated or
    not a torch file, not a SimGAN checkpoint (no ``hyper_parameters.refiner`` with a
    ``_target_``, no ``refiner.*`` weights: e.g. a bare ``torch.save`` of a dict or a
    state dict), or when its refiner weights hold NaN/inf (a diverged run's state,
    which would refine every image to garbage).
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found" if not path.exists()
                        else f"{path}: is not a file (a checkpoint file was expected)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: checkpoint file is empty (0 bytes; an interrupted copy?)")
    checkpoint = _read(path)
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    config = hparams.get("refiner") if isinstance(hparams, dict) else None
    if not isinstance(config, dict) or "_target_" not in config or not isinstance(checkpoint.get("state_dict"), dict):
        raise DataError(f"{path}: not a SimGAN checkpoint (no hyper_parameters.refiner with a _target_ "
                        "and state_dict); use a checkpoint written by src/train.py")
    state = refiner_state(checkpoint["state_dict"])
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: checkpoint has no refiner.* weights in its state_dict")
    bad = first_nonfinite(state)
    if bad is not None:
        raise DataError(f"{path}: refiner weight {bad} holds NaN/inf (a diverged run's state); use an earlier "
                        "checkpoint of that run")
    return checkpoint


def load_refiner(ckpt_path: str | os.PathLike, hash_file: bool = True) -> tuple[nn.Module, dict]:
    """R from a SimGAN checkpoint, in eval mode on CPU, and what is known about it.

    Returns ``(refiner, info)`` with info keys ``path``, ``sha256`` (None unless
    ``hash_file``), ``image_shape`` ([C, H, W] R was trained on), ``channels``,
    ``refiner`` (its ``_target_`` config), ``global_step``. Raises :class:`DataError`
    naming the file for everything :func:`read_checkpoint` refuses, and for weights
    that do not fit the architecture its hyper-parameters describe.
    """
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    config = hparams["refiner"]
    state = refiner_state(checkpoint["state_dict"])
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
