"""Use a trained refiner from Python: refine arrays, or wrap a dataset for downstream training.

    import simgan
    refiner, info = simgan.load_refiner("logs/train/runs/<run>/checkpoints/last.ckpt")
    refined = simgan.refine(refiner, images)            # numpy or torch, uint8 0-255 or float [-1, 1]
    train_set = simgan.RefinedDataset(my_dataset, refiner, image_key="image")

:func:`refine` gives back what it got: the same type (numpy array / torch tensor, on
the same device), shape, dtype and value convention (uint8 0-255 pixels are mapped to
[-1, 1] and quantized back as a refined store is, :class:`~simgan.export.predictor.RefinePredictor`;
floats are taken to be in [-1, 1], the range R was trained on). It runs in batches,
without gradients, on the device the refiner's weights are on. ``refiner`` may also be
a TorchScript refiner written by ``python -m simgan.export.portable``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from simgan.checkpoint import load_refiner

__all__ = ["load_refiner", "refine", "RefinedDataset"]


def _device_of(refiner: nn.Module) -> torch.device:
    first = next(iter(refiner.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _as_refiner(refiner: nn.Module | str | os.PathLike) -> nn.Module:
    if isinstance(refiner, (str, os.PathLike)):
        return load_refiner(refiner, hash_file=False)[0]
    return refiner


def _pixel_codec(dtype: torch.dtype) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """(to [-1, 1] float32, back to ``dtype``) for this input dtype."""
    if dtype == torch.uint8:
        from simgan.export.predictor import RefinePredictor  # the store's own normalize / quantize

        codec = RefinePredictor(nn.Identity(), (0, 255), np.uint8)
        return codec.normalize, codec.quantize
    if dtype.is_floating_point:
        return (lambda x: x.to(torch.float32)), (lambda y: y.to(dtype))
    raise TypeError(f"refine takes uint8 (0-255) or float ([-1, 1]) images, got {dtype}")


@torch.no_grad()
def refine(refiner: nn.Module | str | os.PathLike, images: Any, batch_size: int = 256) -> Any:
    """R(images) for a batch ``(N, C, H, W)`` or ``(N, H, W)``, as the same kind of array it got.

    ``images``: a numpy array or torch tensor, uint8 in 0-255 or float in [-1, 1].
    ``refiner``: an ``nn.Module`` (e.g. from :func:`load_refiner`) or a checkpoint path.
    """
    refiner = _as_refiner(refiner)
    as_numpy = isinstance(images, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(images)) if as_numpy else images
    if not isinstance(x, Tensor):
        raise TypeError(f"refine takes a numpy array or a torch tensor, got {type(images).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"refine takes a batch (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(1)
    channels = getattr(refiner, "channels", None)
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"the refiner takes {channels}-channel images, got shape {tuple(images.shape)}")
    to_unit, from_unit = _pixel_codec(x.dtype)
    device, out_device = _device_of(refiner), x.device
    was_training = refiner.training
    refiner.eval()
    try:
        parts = [from_unit(refiner(to_unit(x[i:i + batch_size].to(device)))).to(out_device)
                 for i in range(0, x.shape[0], batch_size)]
    finally:
        refiner.train(was_training)
    out = torch.cat(parts) if parts else torch.empty_like(x)
    if squeeze:
        out = out.squeeze(1)
    return out.numpy() if as_numpy else out


class RefinedDataset(Dataset):
    """``dataset`` with its images refined on the fly: train downstream models on refined data.

    Each item of ``dataset`` is a dict (its ``image_key`` entry is refined; the rest, the
    labels, is passed through), a tuple or list (its element ``image_key``, 0 by
    default for those), or a bare image. Images are one sample each, ``(C, H, W)`` or
    ``(H, W)``, uint8 or float in [-1, 1] (a :class:`~simgan.data.store.StoreDataset`
    yields the latter). Refining costs one forward pass per item: with a GPU refiner
    use the DataLoader with ``num_workers=0``, or refine a whole store once with
    ``src/refine.py``.
    """

    def __init__(self, dataset: Dataset, refiner: nn.Module | str | os.PathLike, image_key: str | int | None = None):
        self.dataset = dataset
        self.refiner = _as_refiner(refiner)
        self.image_key = image_key

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _refine_one(self, image: Any) -> Any:
        batch = image[None]
        return refine(self.refiner, batch)[0]

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, dict):
            key = "image" if self.image_key is None else self.image_key
            return {**item, key: self._refine_one(item[key])}
        if isinstance(item, (tuple, list)):
            key = 0 if self.image_key is None else int(self.image_key)
            parts = list(item)
            parts[key] = self._refine_one(parts[key])
            return tuple(parts) if isinstance(item, tuple) else parts
        return self._refine_one(item)
