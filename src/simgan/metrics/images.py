"""The image convention every metric checks its inputs against.

Metrics take float images ``N x C x H x W`` in [-1, 1], what
:class:`~simgan.data.store.StoreDataset` returns and the refiner's tanh produces; a
metric fed 0-255 pixels or a single image would run and return a meaningless number, so
each one checks its inputs first.
"""

from __future__ import annotations

import torch


def check_images(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must be float N x C x H x W in [-1, 1] (the project's image convention)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a tensor N x C x H x W, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected float images in [-1, 1], got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"{name}: no images")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"{name}: pixel values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]")
    return x
