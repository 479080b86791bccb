"""The DataModule: a labeled synthetic stream paired with an unlabeled real stream.

SimGAN (Algorithm 1) draws a mini-batch of synthetic images x_i and, independently, a
mini-batch of real images y_j at every step. Here each stream is its own store with
its own DataLoader and sampler; Lightning zips them into ``{"synthetic": batch,
"real": batch}`` and cycles the shorter stream (``max_size_cycle``). Under DDP
Lightning gives each loader a DistributedSampler, so every rank sees a disjoint shard
of both streams per epoch. ``batch_size`` is PER DEVICE: the global batch is
``batch_size * devices * num_nodes``.

Synthetic samples carry their labels (``sample[label]``) for the metrics; images are
in [-1, 1]. A seeded fraction of each stream is held out for validation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from simgan.data.store import StoreDataset
from simgan.errors import ConfigError, DataError


class SimGANDataModule(LightningDataModule):
    def __init__(
        self,
        synthetic,
        real,
        channels: int,
        height: int,
        width: int,
        labels: Sequence[str] = (),
        batch_size: int = 32,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 2:
            raise ConfigError(f"data.batch_size must be >= 2 (the history buffer halves it), got {batch_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.synthetic_source, self.real_source = synthetic, real
        self.image_shape = (int(channels), int(height), int(width))
        self.labels = tuple(labels)
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        self.splits: dict[str, StoreDataset] = {}

    def prepare_data(self) -> None:
        # Rank zero renders / converts once; the other ranks read the finished files.
        self.synthetic_source.prepare()
        self.real_source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for stream, source, labels in (("synthetic", self.synthetic_source, self.labels), ("real", self.real_source, ())):
            full = StoreDataset(source.path, labels)
            if getattr(source, "n", None):
                full = StoreDataset(source.path, labels, np.arange(min(int(source.n), len(full))))
            if full.image_shape != self.image_shape:
                raise DataError(
                    f"{source.path}: {stream} images are C x H x W = {full.image_shape}, but the config says "
                    f"data.channels/height/width = {self.image_shape}; set them to match the store")
            train_idx, val_idx = (full.indices[i] for i in self._split(len(full)))
            if len(train_idx) < self.batch_size:
                raise ConfigError(f"data.batch_size={self.batch_size} is larger than the {stream} training split "
                                  f"({len(train_idx)} images in {source.path})")
            self.splits[f"{stream}_train"] = StoreDataset(source.path, labels, train_idx)
            self.splits[f"{stream}_val"] = StoreDataset(source.path, labels, val_idx)

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(self.seed).permutation(n)
        n_val = int(round(n * self.val_fraction))
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _loader(self, dataset: StoreDataset, train: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=train, drop_last=train,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> CombinedLoader:
        return CombinedLoader({
            "synthetic": self._loader(self.splits["synthetic_train"], train=True),
            "real": self._loader(self.splits["real_train"], train=True),
        }, mode="max_size_cycle")

    def val_dataloader(self) -> CombinedLoader:
        if not len(self.splits["synthetic_val"]) or not len(self.splits["real_val"]):
            return []
        return CombinedLoader({
            "synthetic": self._loader(self.splits["synthetic_val"], train=False),
            "real": self._loader(self.splits["real_val"], train=False),
        }, mode="min_size")

    def describe(self) -> str:
        return f"synthetic: {self.synthetic_source.describe()}; real: {self.real_source.describe()}"
