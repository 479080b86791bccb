"""The benchmark's data: the same batches for every loop, and HDF5 stores of rendered eyes
for the pipeline and the refine export.

Training throughput is measured on batches already in memory, handed out by a
``DataLoader`` (``batch_size=None``, no workers) per stream, so the plain loop and the
platform read identical data through identical loaders and the difference between them
is the platform alone; reading the stores is measured on its own (:mod:`.pipeline`).
Images are the project's procedural eyes (:func:`simgan.data.simulators.eyes.render_eyes`)
mapped to [-1, 1] as :class:`~simgan.data.store.StoreDataset` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from simgan.data.simulators.eyes import render_eyes
from simgan.data.store import write_store

DISTINCT_BATCHES = 4


class PreBatched(Dataset):
    """Item i is ``{"image": batches[i % len(batches)]}``, ``length`` items."""

    def __init__(self, batches: list[Tensor], length: int):
        self.batches, self.length = batches, int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"image": self.batches[i % len(self.batches)]}


def _to_unit(images: np.ndarray) -> Tensor:
    return torch.from_numpy(images.astype(np.float32)) * (2.0 / 255.0) - 1.0


def make_batches(batch: int, image_shape: tuple[int, int, int], seed: int = 0) -> dict[str, list[Tensor]]:
    """``DISTINCT_BATCHES`` synthetic and real batches of ``batch`` images in [-1, 1].

    One batch of eyes is rendered per stream (rendering is slow next to a GPU step) and
    the others are its shifts: the content only has to be plausible, not new.
    """
    c, h, w = image_shape
    synthetic, _ = render_eyes(batch, height=h, width=w, seed=seed)
    real, _ = render_eyes(batch, height=h, width=w, seed=seed + 1)
    grain = np.random.default_rng(seed).integers(-12, 13, size=real.shape)  # a "sensor" the refiner may learn
    real = (real.astype(np.int16) + grain).clip(0, 255).astype(np.uint8)
    out = {}
    for name, images in (("synthetic", synthetic), ("real", real)):
        base = _to_unit(images[:, :1].repeat(c, axis=1))
        out[name] = [torch.roll(base, shifts=k, dims=0).contiguous() for k in range(DISTINCT_BATCHES)]
    return out


def loaders(batches: dict[str, list[Tensor]], length: int) -> dict[str, DataLoader]:
    """One DataLoader per stream, ``length`` batches each (as the datamodule's, minus the disk)."""
    return {name: DataLoader(PreBatched(b, length), batch_size=None) for name, b in batches.items()}


def eye_store(path: Path, n: int, image_shape: tuple[int, int, int], seed: int = 0, labeled: bool = True) -> Path:
    """A store of ``n`` rendered eyes (with their gaze and pupil labels when ``labeled``)."""
    c, h, w = image_shape
    rendered = min(n, 512)  # rendering is the slow part; tiles of it compress alike
    images, labels = render_eyes(rendered, height=h, width=w, seed=seed)
    reps = -(-n // rendered)
    tile = lambda a: np.concatenate([a] * reps)[:n]  # noqa: E731
    return write_store(path, tile(images[:, :1].repeat(c, axis=1)),
                       {k: tile(v) for k, v in labels.items()} if labeled else None, overwrite=True)


def write_stores(root: Path, n: int, image_shape: tuple[int, int, int], seed: int = 0) -> dict[str, Path]:
    """A labeled synthetic store and an unlabeled real store of ``n`` images each."""
    return {"synthetic": eye_store(root / "synthetic.h5", n, image_shape, seed),
            "real": eye_store(root / "real.h5", n, image_shape, seed + 1, labeled=False)}
