"""The SimGAN checkpoint: what it holds beyond Lightning's, and every way the project reads one.

A checkpoint is Lightning's file (weights, optimizer and loop states, the DataModule's
``state_dict`` under ``"SimGANDataModule"``: the training streams' positions) plus what
SimGAN (paper Algorithm 1, Sec. 2.3) needs to continue a run bit for bit, under these keys:

- ``simgan_schedule``: :meth:`~simgan.schedule.PhaseSchedule.state_dict` (phase, cycle
  position, adapted K_g);
- ``simgan_rng``: the global RNG states (:mod:`simgan.reliability.rng`), restored at the
  first training step after a resume;
- ``simgan_history_per_rank`` (DDP only): every rank's own history buffer. Lightning
  writes rank zero's state alone, so without it a resumed run would give every rank rank
  zero's buffer; the ``state_dict``'s ``history.*`` is rank zero's.

Everything is tensors and plain containers (hyper-parameters are made plain before
``save_hyperparameters``), so every reader here uses ``torch.load(weights_only=True)``:
a checkpoint cannot run code when it is read.

Readers: :func:`read_checkpoint` (the one checked reader of train, refine and evaluate),
:func:`load_refiner` (R alone: refine and evaluate never build D or the regularizer,
whose weights file may exist only on the training machine), :func:`check_resumable`
(training's check before Lightning restores), :func:`check_refiner_fits` (a refiner
against the images it is given). torch.compile's ``_orig_mod.`` prefix is removed
wherever weights are read (this project keeps compiled callables off the module tree,
but checkpoints from other set-ups may carry it).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from hydra.utils import instantiate
from torch import Tensor, nn

from simgan.errors import DataError
from simgan.reliability import partials
from simgan.reliability.finite import first_nonfinite, nonfinite_in_checkpoint
from simgan.reliability.rng import collect_rng_states
from simgan.schedule import PhaseSchedule

log = logging.getLogger("simgan")

SCHEDULE = "simgan_schedule"
RNG = "simgan_rng"
HISTORY_PER_RANK = "simgan_history_per_rank"
_COMPILE_PREFIX = "_orig_mod."
# A run with ``model.ema.enabled`` keeps an average of R's weights beside R (simgan.ema);
# that average is the refiner the run validated and is the one to refine with.
_EMA_PREFIX, _REFINER_PREFIX = "refiner_ema.average.", "refiner."


# ---------------------------------------------------------------- writing (module hooks)
def add_training_state(checkpoint: dict, schedule: Any, history_images: Tensor, history_filled: Tensor) -> None:
    """Adds the schedule, RNG states and (under DDP) every rank's history to ``checkpoint``.

    Called on every rank while Lightning builds a checkpoint (it contains a collective).
    The RNG states are rank zero's: every rank is seeded alike and draws alike.
    """
    checkpoint[SCHEDULE] = schedule.state_dict()
    checkpoint[RNG] = collect_rng_states()
    per_rank = gather_history(history_images, history_filled)
    if per_rank is not None:
        checkpoint[HISTORY_PER_RANK] = per_rank


def restore_training_state(checkpoint: dict, schedule: Any, rank: int | None, world: int | None) -> dict | None:
    """Restores the schedule (and this rank's history into the ``state_dict``); returns the RNG states.

    ``rank``/``world`` are None when the checkpoint is loaded outside training
    (``SimGAN.load_from_checkpoint``): the history stays the ``state_dict``'s.
    """
    if SCHEDULE in checkpoint:
        schedule.load_state_dict(checkpoint[SCHEDULE])
    if rank is not None:
        restore_own_history(checkpoint, rank, world)
    return checkpoint.get(RNG)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_history(images: Tensor, filled: Tensor) -> dict[str, Any] | None:
    """On rank zero: ``{"world_size": W, "images": [rank 0's filled slots, rank 1's, ...]}``.

    A collective: every rank must call it. Returns None on the other ranks and when not
    distributed (the ``state_dict`` then holds the only buffer). Only the filled slots
    are kept (buffers fill from slot 0), so early checkpoints stay small. Ranks are
    broadcast one at a time: a gather would hold W buffers in rank zero's device memory.
    """
    rank, world = _world()
    if world < 2:
        return None
    counts = torch.zeros(world, dtype=torch.long, device=images.device)
    counts[rank] = filled.to(images.device)
    dist.all_reduce(counts)
    gathered: list[Tensor] = []
    for src, n in enumerate(counts.tolist()):
        if n == 0:
            gathered.append(images.new_empty((0, *images.shape[1:])).cpu())
            continue
        buf = images[:n].contiguous() if rank == src else images.new_empty((n, *images.shape[1:]))
        dist.broadcast(buf, src=src)
        if rank == 0:
            gathered.append(buf.cpu())
    return {"world_size": world, "images": gathered} if rank == 0 else None


def restore_own_history(checkpoint: dict, rank: int, world: int, prefix: str = "history.") -> None:
    """Replaces the checkpoint's history buffer (rank zero's) by this rank's own, when it can.

    With another world size than the checkpoint's it warns, and every rank keeps the
    ``state_dict``'s buffer (rank zero's).
    """
    saved = checkpoint.get(HISTORY_PER_RANK)
    state = checkpoint.get("state_dict", {})
    key_images, key_filled = f"{prefix}images", f"{prefix}filled"
    saved_world = int(saved["world_size"]) if saved else 1
    if saved_world != world:
        if rank == 0:
            log.warning("resume: the checkpoint holds the history buffers of %d rank(s), this run has %d: "
                        "every rank starts from rank 0's buffer", saved_world, world)
        return
    if saved is None or key_images not in state:
        return
    own = saved["images"][rank]
    images = torch.zeros(state[key_images].shape, dtype=state[key_images].dtype)
    images[:len(own)] = own
    state[key_images] = images
    state[key_filled] = torch.tensor(len(own), dtype=torch.long)


def step_description(checkpoint: dict) -> str:
    """``step N, phase P`` of the step that produced ``checkpoint``'s state, for messages."""
    step = checkpoint.get("global_step", "?")
    try:  # the schedule already points at the next step: ask for the one just done
        state = dict(checkpoint[SCHEDULE])
        phase = PhaseSchedule(**state).phase_of(max(int(state["step"]) - 1, 0)).value
    except (KeyError, TypeError, ValueError):
        phase = "?"
    return f"step {step}, phase {phase}"


# ---------------------------------------------------------------- reading
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
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except Exception as err:  # truncated zip, not a torch file, objects other than tensors...
            if mmap and "mmap" in str(err):
                continue
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else err}"
            if "Weights only load failed" in str(err):
                reason = ("it holds objects other than tensors and plain containers, which are not loaded "
                          "because unpickling them could run code; it was not written by src/train.py")
            raise DataError(f"{path}: cannot read checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise DataError(f"{path}: not a Lightning checkpoint (holds a {type(checkpoint).__name__})")
    return checkpoint


def refiner_state(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """R's weights, prefix removed (and any ``_orig_mod.`` from torch.compile): the
    ``refiner_ema.average.*`` entries when the run kept a weight average, else ``refiner.*``."""
    keys = {key.replace(_COMPILE_PREFIX, ""): value for key, value in state_dict.items()}
    prefix = _EMA_PREFIX if any(key.startswith(_EMA_PREFIX) for key in keys) else _REFINER_PREFIX
    return {key[len(prefix):]: value for key, value in keys.items() if key.startswith(prefix)}


def read_checkpoint(ckpt_path: str | os.PathLike) -> dict:
    """A SimGAN checkpoint, read (mmapped) and checked.

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
    hparams = checkpoint.get("hyper_parameters")
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


def check_resumable(ckpt_path: str | Path, model: Any) -> None:
    """Raises :class:`DataError` naming ``ckpt_path`` unless training can resume from it.

    It must be a SimGAN checkpoint (:func:`read_checkpoint`) that Lightning wrote (loop
    and optimizer states), with finite weights and optimizer states, and its weights must
    have the names and shapes of the configured ``model``'s. The checkpoint's folder
    loses the partial files of writers killed there: the resumed run writes into a new
    run dir and would never write there again.
    """
    checkpoint = read_checkpoint(ckpt_path)
    missing = [k for k in ("pytorch-lightning_version", "optimizer_states", "loops") if k not in checkpoint]
    if missing:
        raise DataError(f"{ckpt_path}: not a training checkpoint Lightning can resume (no {', '.join(missing)}: "
                        "a bare torch.save of weights?); resume from a last.ckpt written by src/train.py")
    bad = nonfinite_in_checkpoint(checkpoint)
    if bad is not None:
        raise DataError(f"{ckpt_path}: {bad} holds NaN/inf (a diverged state); resume from an earlier checkpoint")
    found, expected = checkpoint["state_dict"], model.state_dict()
    problems = [f"{k} missing" for k in expected if k not in found]
    problems += [f"{k} unexpected" for k in found if k not in expected]
    problems += [f"{k} is {list(found[k].shape)} here, {list(v.shape)} in the config" for k, v in expected.items()
                 if k in found and hasattr(found[k], "shape") and tuple(found[k].shape) != tuple(v.shape)]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{ckpt_path}: its weights do not fit the configured model ({'; '.join(problems[:3])}{more}): "
                        "it was written with other model.* settings (another architecture, history size...); resume with "
                        "that run's model.* settings")
    partials.remove_orphans_in(Path(ckpt_path).parent)


def check_refiner_fits(info: dict, shape, images: str, allow_size_mismatch: bool = False,
                       remedy: str = "it is fully convolutional, so pass allow_size_mismatch=true to refine "
                                     "them anyway (its realism at another scale is untested)") -> str | None:
    """The one check that a refiner may take these images, for refine and evaluate alike.

    ``info``: :func:`load_refiner`'s; ``shape``: the images' C x H x W; ``images``: what
    names them in the message (a store's path, the data settings). Another number of
    channels is always a :class:`DataError`; another H x W is one too unless
    ``allow_size_mismatch`` (R is fully convolutional, so it runs, but its realism at
    another scale is untested), when a note is returned instead.
    """
    c, h, w = (int(v) for v in shape)
    trained = info.get("image_shape")
    channels = info.get("channels")
    if channels is not None and channels != c:
        raise DataError(f"{images}: images have {c} channel(s), the refiner in {info['path']} takes "
                        f"{channels} channel(s): a refiner cannot refine images with another number of channels")
    if trained and [int(v) for v in trained[1:]] != [h, w]:
        if allow_size_mismatch:
            return f"refiner trained on {trained[1]}x{trained[2]} images, applied to {h}x{w}"
        raise DataError(f"{images}: images are {h}x{w}, the refiner in {info['path']} was trained on "
                        f"{trained[1]}x{trained[2]}; {remedy}")
    return None
