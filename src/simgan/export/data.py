"""What each rank reads: its share of the chunks still to refine, a batch per item.

Sharding is by chunk, not by sample: rank r takes chunks ``todo[r::world_size]``, so
shards are disjoint, no sample is padded in twice (Lightning's DistributedSampler would
pad to a multiple of the world size; it is switched off with
``use_distributed_sampler=False``), and each batch is one contiguous slice of
``/images``: one HDF5 read, not ``batch_size`` of them. The list of chunks still to do
is read once by rank 0 and broadcast, so every rank plans from the same listing even
while others already write chunk files.

Items are the store's raw pixels (uint8 stays uint8: a quarter of the bytes to move to
the device); :class:`~simgan.export.predictor.RefinePredictor` normalizes them there.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.accelerators import CPUAccelerator
from torch.utils.data import DataLoader, Dataset

from simgan.data.store import read_images
from simgan.export.parts import Parts

IDLE = -1  # the chunk id of the empty batch an idle rank runs


class ChunkBatches(Dataset):
    """Item i = ``{"image": raw B x C x H x W, "chunk": k, "start": a, "stop": b}`` for samples a..b-1."""

    def __init__(self, path: str, items: list[tuple[int, int, int]]):
        self.path = str(path)
        self.items = items
        self._file: h5py.File | None = None
        self._images: h5py.Dataset | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        # A handle opened before a fork is unusable in the child: reopen per process.
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            # One handle for the whole run: HDF5's chunk cache lives as long as the open
            # dataset, so a batch smaller than an HDF5 chunk does not decompress it again.
            self._images = self._file["images"]
            self._pid = os.getpid()
        chunk, start, stop = self.items[i]
        raw = read_images(self._images, slice(start, stop), self.path)
        if raw.dtype == np.uint16:  # torch has few uint16 kernels; int32 holds it exactly
            raw = raw.astype(np.int32)
        return {"image": torch.from_numpy(raw), "chunk": chunk, "start": start, "stop": stop}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_images": None}


def batches_of(parts: Parts, chunks: list[int], batch_size: int) -> list[tuple[int, int, int]]:
    items = []
    for chunk in chunks:
        start, stop = parts.bounds(chunk)
        items += [(chunk, a, min(a + batch_size, stop)) for a in range(start, stop, batch_size)]
    return items


class RefineData(LightningDataModule):
    def __init__(self, path: str, parts: Parts, batch_size: int, num_workers: int | None = None):
        super().__init__()
        self.path = str(path)
        self.parts = parts
        self.batch_size = int(batch_size)
        self.num_workers = num_workers
        self.todo: list[int] = []
        self.mine: list[int] = []

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        # Rank 0's plan is the one every rank follows (its chunk size included: a resumed
        # run keeps the interrupted run's chunking).
        plan = (self.parts.chunk_size, self.parts.todo()) if trainer.is_global_zero else None
        self.parts.chunk_size, self.todo = trainer.strategy.broadcast(plan, src=0)
        self.mine = self.todo[trainer.global_rank::trainer.world_size]

    @property
    def todo_images(self) -> int:
        return sum(b - a for a, b in map(self.parts.bounds, self.todo))

    def predict_dataloader(self) -> DataLoader:
        # Lightning refuses a rank with a zero-length loader (fewer chunks left than ranks):
        # such a rank refines one empty batch, which the writer ignores (chunk -1).
        items = batches_of(self.parts, self.mine, self.batch_size) or [(IDLE, 0, 0)]
        dataset = ChunkBatches(self.path, items)
        accelerated = self.trainer is not None and not isinstance(self.trainer.accelerator, CPUAccelerator)
        # Default: read in the main process on CPU (handing a batch over from a worker costs
        # the main process more than the ~1 ms read), in 2 workers per device otherwise.
        workers = self.num_workers if self.num_workers is not None else (2 if accelerated else 0)
        # batch_size=1 + unwrap rather than batch_size=None: Lightning's predict loop then
        # tracks batch indices through its batch-sampler wrapper without a warning.
        return DataLoader(dataset, batch_size=1, shuffle=False, collate_fn=_unwrap, num_workers=workers,
                          pin_memory=accelerated, persistent_workers=False)


def _unwrap(items: list[dict]) -> dict:
    return items[0]
