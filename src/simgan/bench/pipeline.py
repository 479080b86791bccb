"""The data pipeline alone: HDF5 stores -> the platform's DataModule -> batches per second.

What training consumes per step is one synthetic and one real batch (the
``CombinedLoader`` of :class:`simgan.data.datamodule.SimGANDataModule`), so the unit is
a step's worth of data: ``b`` synthetic images with their labels plus ``b`` real ones,
read, decompressed and normalized to [-1, 1] by :class:`~simgan.data.store.StoreDataset`
in DataLoader workers. The first batch (worker start-up) is not timed. Measured with
nothing else running in this process: while training, the workers share the CPU with
the training step.
"""

from __future__ import annotations

import time
from pathlib import Path

from simgan.bench.data import write_stores
from simgan.bench.settings import BenchSettings
from simgan.data.datamodule import SimGANDataModule
from simgan.data.sources import StoreFile


def _batches(loader):
    """Endless batches of a CombinedLoader (which yields ``(batch, batch_idx, loader_idx)``)."""
    while True:
        for item in loader:
            yield item[0] if isinstance(item, tuple) else item


def bench_pipeline(s: BenchSettings, root: Path, workers: int) -> dict:
    paths = write_stores(root, s.pipeline_images, s.image_shape, s.seed)
    c, h, w = s.image_shape
    dm = SimGANDataModule(StoreFile(str(paths["synthetic"])), StoreFile(str(paths["real"])), channels=c, height=h,
                          width=w, labels=["gaze", "pupil"], batch_size=s.batch, val_fraction=0.0,
                          num_workers=workers, seed=s.seed)
    dm.prepare_data()
    dm.setup("fit")
    batches = _batches(dm.train_dataloader())
    next(batches)  # worker start-up, first chunk reads
    started = time.perf_counter()
    for _ in range(s.pipeline_batches):
        batch = next(batches)
    seconds = time.perf_counter() - started
    assert batch["synthetic"]["image"].shape == (s.batch, c, h, w)
    del batches  # ends the workers
    return {"workers": workers, "batches": s.pipeline_batches, "seconds": seconds,
            "batches_per_s": s.pipeline_batches / seconds, "images_per_s": 2 * s.batch * s.pipeline_batches / seconds}
