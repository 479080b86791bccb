"""The prediction writer: refined batches -> one compressed chunk file per finished chunk.

A :class:`~lightning.pytorch.callbacks.BasePredictionWriter` on every rank. Batches of
one chunk arrive one after another (:mod:`simgan.export.data`); they are copied into
that chunk's buffer at their index offset. Each HDF5 chunk (``rows`` samples) of it is
handed to threads that compress it (:mod:`simgan.export.codec`, in parallel: zlib
releases the GIL) as soon as its rows are in, while the device refines the next batches;
when the chunk is whole, ``chunk-<k>.npz`` is written atomically (:mod:`simgan.export.parts`)
from those blocks, so only the last block's compression is left after the last batch.
At most ``max_pending`` chunks wait for the threads, so memory is bounded by the chunk
size, never by the dataset size.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from simgan.export.codec import GZIP_LEVEL, encode
from simgan.export.parts import Parts


class ChunkWriter(BasePredictionWriter):
    def __init__(self, parts: Parts, sample_shape: tuple[int, ...], dtype: np.dtype, rows: int,
                 threads: int | None = None, max_pending: int = 2, level: int = GZIP_LEVEL):
        super().__init__(write_interval="batch")
        self.parts = parts
        self.sample_shape = tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        self.rows = int(rows)
        self.threads = threads
        self.max_pending = max_pending
        self.level = int(level)
        self.written: list[int] = []
        self._chunk: int | None = None
        self._pending: deque[Future] = deque()
        self._blocks: list[Future] = []  # the current chunk's compressed HDF5 chunks, in order
        self._encoders: ThreadPoolExecutor | None = None
        self._saver: ThreadPoolExecutor | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Threads are made here, not in __init__: a spawn strategy pickles the callbacks.
        threads = self.threads or max(1, min(8, (os.cpu_count() or 2) // max(1, trainer.num_devices)))
        self._encoders = ThreadPoolExecutor(threads, thread_name_prefix="refine-encode")
        self._saver = ThreadPoolExecutor(1, thread_name_prefix="refine-save")

    def write_on_batch_end(self, trainer, pl_module, prediction: dict, batch_indices, batch, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        chunk, start, stop = int(prediction["chunk"]), int(prediction["start"]), int(prediction["stop"])
        if chunk < 0:  # an idle rank's empty batch (simgan.export.data.IDLE)
            return
        if chunk != self._chunk:
            self._begin(chunk)
        lo = start - self._bounds[0]
        if self._filled[lo:lo + stop - start].any():
            raise RuntimeError(f"refine: samples {start}..{stop - 1} of chunk {chunk} arrived twice")
        self._buffer[lo:lo + stop - start] = prediction["image"].cpu().numpy()
        self._filled[lo:lo + stop - start] = True
        self._encode_filled()
        if self._filled.all():
            self._finish()

    def _begin(self, chunk: int) -> None:
        if self._chunk is not None:
            raise RuntimeError(f"refine: chunk {self._chunk} incomplete when chunk {chunk} started")
        self._chunk = chunk
        self._bounds = self.parts.bounds(chunk)
        n = self._bounds[1] - self._bounds[0]
        self._buffer = np.empty((n, *self.sample_shape), dtype=self.dtype)
        self._filled = np.zeros(n, dtype=bool)
        self._blocks = []

    def _encode_filled(self) -> None:
        """Submits, in order, every next HDF5 chunk whose rows have all arrived."""
        n = len(self._filled)
        while (a := len(self._blocks) * self.rows) < n and self._filled[a:a + self.rows].all():
            self._blocks.append(self._encoders.submit(encode, self._buffer[a:a + self.rows], self.rows, self.level))

    def _finish(self) -> None:
        chunk, (start, stop), blocks = self._chunk, self._bounds, self._blocks
        self._chunk, self._buffer, self._blocks = None, None, []
        self._pending.append(self._saver.submit(self._save, chunk, np.arange(start, stop), blocks))
        while len(self._pending) > self.max_pending:
            self._pending.popleft().result()

    def _save(self, chunk: int, indices: np.ndarray, blocks: list[Future]) -> None:
        parts = [b.result() for b in blocks]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        self.parts.write(chunk, indices, np.frombuffer(b"".join(parts), dtype=np.uint8), offsets)
        self.written.append(chunk)

    @property
    def between_chunks(self) -> bool:
        """No chunk is half-refined: stopping now loses no refined image."""
        return self._chunk is None

    def flush(self) -> None:
        """Waits until every finished chunk is on disk; a failed write (disk full...) raises here."""
        while self._pending:
            self._pending.popleft().result()

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        if self._chunk is not None:
            raise RuntimeError(f"refine: the predict loop ended inside chunk {self._chunk}")
        self.flush()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for pool in (self._encoders, self._saver):
            if pool is not None:
                pool.shutdown(wait=True)
        self._encoders = self._saver = None
