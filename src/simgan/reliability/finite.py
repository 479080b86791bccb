"""Finding NaN/inf: in one training step's tensors, and in a checkpoint about to be written."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor


def first_nonfinite(tensors: dict[str, Tensor]) -> str | None:
    """The name of the first tensor holding a NaN or inf, else None.

    One host sync when everything is finite (the common case): the flags are stacked and
    read at once.
    """
    flags = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
    if bool(flags.all()):
        return None
    return next(name for name, ok in zip(tensors, flags.tolist()) if not ok)


def _float_tensors(obj: Any, prefix: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(obj, Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _float_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _float_tensors(value, f"{prefix}[{i}]")


def nonfinite_in_checkpoint(checkpoint: dict) -> str | None:
    """The name of the first non-finite weight, buffer or optimizer state, else None."""
    for section in ("state_dict", "optimizer_states"):
        for name, tensor in _float_tensors(checkpoint.get(section, {}), section):
            if not bool(torch.isfinite(tensor).all()):
                return name
    return None
