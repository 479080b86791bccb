"""The DataModule: a labeled synthetic stream paired with an unlabeled real stream.

SimGAN (Algorithm 1) draws a mini-batch of synthetic images x_i for every step and,
independently, a mini-batch of real images y_j for every discriminator step. Here each
stream is its own store with its own DataLoader. The synthetic one is the training
loader Lightning iterates (``{"synthetic": batch}``, images only: nothing else travels to
the device); real batches are drawn by the module's discriminator steps alone
(:meth:`SimGANDataModule.real_batch`), so at K_g = 50 a refiner step reads no real
image. ``batch_size`` is PER DEVICE: the global batch is ``batch_size * devices * num_nodes``.

Training order is resumable (docs/reliability.md): each training stream is endless
and drawn by a :class:`~simgan.data.samplers.ResumableBatchSampler`, whose order is a
function of (seed, stream, stream epoch, rank, world size) and which starts at a given
batch. The DataModule counts each stream's batches actually consumed (synthetic in
``on_before_batch_transfer``, which Lightning calls once per batch the loop takes, not
for batches that workers or the prefetcher hold in advance; real in ``real_batch``),
keeps the counts in its ``state_dict`` (hence in every checkpoint), and a resumed run's
loaders start there.
The samplers shard both streams across DDP ranks themselves (disjoint slices of each
stream epoch), and validation is sharded with a DistributedSampler, so the Trainer
must not add its own: ``shards_itself = True`` tells ``simgan.training`` to pass
``use_distributed_sampler=False``. Every DataLoader has its own seeded generator, so
making an iterator never draws from the global torch RNG (which the history buffer
uses: a validation run must not shift it).

Synthetic samples carry their labels (``sample[label]``) for the metrics; images are
in [-1, 1]. A seeded fraction of each stream is held out for validation.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, DistributedSampler

from simgan.data.samplers import ChunkedBatchSampler, ResumableBatchSampler, check_batch_fits
from simgan.data.sources import NpzStore
from simgan.data.store import StoreDataset, check_store
from simgan.errors import ConfigError, DataError

log = logging.getLogger("simgan")
STREAMS = ("synthetic", "real")


class SimGANDataModule(LightningDataModule):
    # The samplers shard across ranks: the Trainer must not add a DistributedSampler.
    shards_itself = True

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
        seed: int | None = 0,
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
        # seed=null leaves the nets' init unseeded; the split and data order stay those of
        # seed 0, so that a resumed run (which rebuilds the split) still sees the same data.
        self.seed = int(seed) if seed is not None else 0
        self.splits: dict[str, StoreDataset] = {}
        self.batches_consumed = {stream: 0 for stream in STREAMS}
        self._real_batches: Any = None  # the real stream's iterator, made at the first draw
        self._loaded_state: dict[str, Any] | None = None

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
            check_batch_fits(self.batch_size, stream, len(train_idx), f"{len(train_idx)} images in {source.path}")
            self.splits[f"{stream}_train"] = StoreDataset(source.path, labels, train_idx)
            self.splits[f"{stream}_val"] = StoreDataset(source.path, labels, val_idx)

    def check_sizes(self) -> None:
        """The batch fits each stream's training split: checked before anything is rendered.

        Uses the sizes the sources know without preparing (``n`` of a rendered set, the
        count of an existing store or ``.npz``); ``setup`` checks again on the real stores.
        """
        for stream, source in zip(STREAMS, (self.synthetic_source, self.real_source)):
            n = _known_size(source)
            if n is None:
                continue
            n_train = n - int(round(n * self.val_fraction))
            check_batch_fits(self.batch_size, stream, n_train,
                             f"{n_train} of {n} images, data.val_fraction={self.val_fraction}")

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(self.seed).permutation(n)
        n_val = int(round(n * self.val_fraction))
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _generator(self, *key: int) -> torch.Generator:
        # A loader without its own generator draws worker seeds from the global RNG.
        return torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, *key]).generate_state(1)[0]))

    @staticmethod
    def _sampler_class(chunks) -> type[ResumableBatchSampler]:
        # A streamed store is read in chunk-aware order (each batch from a few HDF5 chunks,
        # ChunkedBatchSampler); a preloaded one (no chunk ids) reads any order fast: a full permutation.
        return ResumableBatchSampler if chunks is None else ChunkedBatchSampler

    def train_sampler(self, stream: str, start: int = 0) -> ResumableBatchSampler:
        rank, world = self._rank_world()
        split = self.splits[f"{stream}_train"]
        chunks = split.chunk_ids()
        extra = {} if chunks is None else {"chunks": chunks}
        return self._sampler_class(chunks)(len(split), self.batch_size, self.seed, STREAMS.index(stream), rank,
                                           world, start=start, name=stream, **extra)

    def _train_loader(self, stream: str) -> DataLoader:
        start = self.batches_consumed[stream]
        return DataLoader(self.splits[f"{stream}_train"], batch_sampler=self.train_sampler(stream, start),
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0,
                          generator=self._generator(STREAMS.index(stream), start))

    def train_dataloader(self) -> CombinedLoader:
        self._check_resumed_order()
        self._real_batches = None  # a new fit draws the real stream from its saved position
        # The stream is endless: max_steps ends training.
        return CombinedLoader({"synthetic": self._train_loader("synthetic")}, mode="max_size_cycle")

    def real_batch(self) -> dict[str, torch.Tensor]:
        """The next real training batch (``{"image": ...}``, on the CPU), for a step that uses one.

        Only discriminator steps call it: refiner steps read no real image. The count of
        batches drawn is the real stream's position in the checkpoint.
        """
        if self._real_batches is None:
            self._real_batches = iter(self._train_loader("real"))
        batch = next(self._real_batches)
        self.batches_consumed["real"] += 1
        return {"image": batch["image"]}

    def _val_loader(self, dataset: StoreDataset) -> DataLoader:
        rank, world = self._rank_world()
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, sampler=sampler,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0, generator=self._generator(99))

    def val_dataloader(self) -> CombinedLoader:
        if not len(self.splits["synthetic_val"]) or not len(self.splits["real_val"]):
            return []
        return CombinedLoader({
            "synthetic": self._val_loader(self.splits["synthetic_val"]),
            "real": self._val_loader(self.splits["real_val"]),
        }, mode="min_size")

    # ---------------------------------------------------------------- resume
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Called once per batch the loop takes (prefetched batches are not counted). A
        # training step uses the synthetic images alone: labels and indices stay here.
        trainer = self.trainer
        if trainer is not None and trainer.training:
            self.batches_consumed["synthetic"] += 1
            return {"synthetic": {"image": batch["synthetic"]["image"]}}
        return batch

    def state_dict(self) -> dict[str, Any]:
        _, world = self._rank_world()
        return {"batches_consumed": dict(self.batches_consumed), "seed": self.seed,
                "batch_size": self.batch_size, "world_size": world,
                "train_sizes": [len(self.splits[f"{s}_train"]) for s in STREAMS] if self.splits else None,
                "orders": [self._sampler_class(self.splits[f"{s}_train"].chunk_ids()).order for s in STREAMS]
                if self.splits else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "batches_consumed" in state:
            self.batches_consumed = {stream: int(state["batches_consumed"][stream]) for stream in STREAMS}
        else:  # written when every step drew one batch of each stream
            self.batches_consumed = {stream: int(state["train_batches_consumed"]) for stream in STREAMS}
        self._loaded_state = dict(state)

    def _check_resumed_order(self) -> None:
        """Warns when a resumed run cannot continue the saved data order exactly."""
        saved, self._loaded_state = self._loaded_state, None
        if not saved:
            return
        now = self.state_dict()
        saved.setdefault("orders", [ResumableBatchSampler.order] * len(STREAMS))  # before chunk-aware orders
        changed = [k for k in ("seed", "batch_size", "world_size", "train_sizes", "orders") if saved.get(k) != now[k]]
        if changed:
            log.warning("resume: %s changed since the checkpoint (%s -> %s); training continues after batches %s "
                        "but the data order is not the one the interrupted run would have seen",
                        ", ".join(changed), [saved.get(k) for k in changed], [now[k] for k in changed],
                        self.batches_consumed)

    def describe(self) -> str:
        return f"synthetic: {self.synthetic_source.describe()}; real: {self.real_source.describe()}"


def _npz_count(path: Path, key: str) -> int | None:
    """The first dimension of array ``key`` in an ``.npz``, read from its header only."""
    with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read(f)
    return int(shape[0]) if shape else None


def _known_size(source: Any) -> int | None:
    """How many images a source will provide, if knowable without preparing it."""
    cap = getattr(source, "n", None)
    rendered = getattr(source, "args", None)
    if isinstance(rendered, dict) and "n" in rendered:
        return int(rendered["n"])
    count = None
    try:
        path = Path(getattr(source, "path"))
        if path.is_file():
            count = int(check_store(path)["count"])
        elif isinstance(source, NpzStore) and Path(source.npz).is_file():  # the whole array becomes the store
            count = _npz_count(Path(source.npz), source.key)
    except (AttributeError, TypeError, KeyError, OSError, ValueError, zipfile.BadZipFile):
        count = None  # unknown here: setup() checks the prepared store
    if count is None:
        return int(cap) if cap else None
    return min(count, int(cap)) if cap else count
