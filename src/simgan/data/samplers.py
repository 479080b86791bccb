"""An endless, seeded, resumable batch sampler: the data order is a pure function of state.

A resumed run must draw exactly the batches the uninterrupted run would have drawn
(docs/reliability.md). A plain shuffled DataLoader cannot promise that: its order comes
from the global RNG, and Lightning restarts its epoch on a mid-epoch resume. Here the
order of one stream on one rank is a function of ``(seed, stream, epoch, rank,
world_size)`` only, and the sampler starts at a given batch number, so a resumed run
passes ``start=<batches already consumed>`` and continues bit for bit.

- Endless: stream epochs follow one another inside one iterator, so the two streams
  (synthetic and real, of different sizes) each cycle at their own length while the
  training loop sees one endless zipped stream, stopped by ``max_steps``.
- Sharded: each stream epoch's permutation is cut into ``world_size`` disjoint,
  equal slices of ``n // world_size`` indices; rank r takes slice r. So under DDP the
  ranks see disjoint data, as with Lightning's DistributedSampler (which must then be
  switched off: ``Trainer(use_distributed_sampler=False)``, see ``simgan.training``).
- Incomplete batches are dropped (a D step needs a full, even batch).

The sampler does not count what was consumed: DataLoader workers and Lightning's
prefetching pull batches ahead of training. The DataModule counts consumed batches
and builds a new sampler from that count on resume.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

from simgan.errors import ConfigError


def check_batch_fits(batch_size: int, stream: str, n_train: int, counted: str, per_device: bool = False) -> None:
    """Raises :class:`ConfigError` unless one batch fits the ``stream``'s training split.

    The one check of that rule: from the sizes known before anything is rendered, on
    the prepared stores, and per device in the sampler. ``counted`` says how ``n_train``
    was counted, for the message.
    """
    if int(n_train) < int(batch_size):
        where = " per device" if per_device else ""
        raise ConfigError(f"data.batch_size={batch_size} is larger than the {stream} training split{where} "
                          f"({counted}); use a smaller batch or more data")


class ResumableBatchSampler(Sampler[list[int]]):
    order = "permutation"  # the kind of order, kept in checkpoints: a resume on another kind is not exact

    def __init__(self, n: int, batch_size: int, seed: int, stream: int, rank: int = 0, world_size: int = 1,
                 start: int = 0, name: str = "stream"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n, self.batch_size, self.stream = int(n), int(batch_size), int(stream)
        self.seed = int(seed) % 2**63  # SeedSequence takes non-negative ints only
        self.rank, self.world_size, self.start = int(rank), int(world_size), int(start)
        self.per_rank = self.n // self.world_size
        self.batches_per_epoch = self.per_rank // self.batch_size
        check_batch_fits(batch_size, name, self.per_rank,
                         f"{self.n} images / {world_size} device(s) = {self.per_rank}", per_device=True)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This rank's indices for one stream epoch (disjoint from the other ranks')."""
        perm = np.random.default_rng([self.seed, self.stream, int(epoch)]).permutation(self.n)
        return perm[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]

    def batch(self, number: int) -> list[int]:
        """The indices of batch ``number`` (counted from the start of training)."""
        epoch, i = divmod(int(number), self.batches_per_epoch)
        return self.epoch_order(epoch)[i * self.batch_size:(i + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        number = self.start
        epoch, order = None, None
        while True:
            e, i = divmod(number, self.batches_per_epoch)
            if e != epoch:
                epoch, order = e, self.epoch_order(e)
            yield order[i * self.batch_size:(i + 1) * self.batch_size].tolist()
            number += 1


# Chunks mixed together by the chunk-aware order: a batch's images come from about this
# many store chunks (more when a chunk holds fewer samples than a batch / this number).
DEFAULT_BUFFER_CHUNKS = 16


class ChunkedBatchSampler(ResumableBatchSampler):
    """The resumable order, grouped by store chunk so that a streamed store reads fast.

    A store keeps ``/images`` in compressed HDF5 chunks of consecutive samples
    (:mod:`simgan.data.store`); reading one sample costs decompressing its whole chunk.
    A full permutation touches a different chunk for nearly every sample of a batch, so a
    store larger than memory streamed ~15x slower than a preloaded one. Here each stream
    epoch is built in two shuffles:

    1. the chunks are put in a random order (the positions of one chunk stay together),
    2. the sequence is cut into windows of ``buffer_chunks`` consecutive chunks (of that
       random order, so chunks far apart in the file) and shuffled within each window.

    A batch then draws from about ``buffer_chunks`` chunks (each read and decompressed
    once per batch by :meth:`StoreDataset.__getitems__`), yet every epoch is still a
    permutation of all positions, the windows hold random chunks of the whole store,
    and consecutive samples are as far apart in the file as in a full permutation up to
    a factor ``1 - 1 / buffer_chunks`` (tests/test_streaming.py measures it).

    ``chunks[pos]``: the chunk of position ``pos`` (``StoreDataset.chunk_ids()``:
    ``indices[pos] // chunk_rows``). Everything else is :class:`ResumableBatchSampler`'s
    contract: the order is a function of ``(seed, stream, epoch, rank, world_size)``
    and of ``chunks`` / ``buffer_chunks``; the ranks take disjoint equal slices of each
    epoch's order; ``start`` resumes at a batch number, bit for bit.
    """

    order = "chunk-aware"

    def __init__(self, n: int, batch_size: int, seed: int, stream: int, rank: int = 0, world_size: int = 1,
                 start: int = 0, name: str = "stream", *, chunks: np.ndarray,
                 buffer_chunks: int = DEFAULT_BUFFER_CHUNKS):
        super().__init__(n, batch_size, seed, stream, rank, world_size, start, name)
        chunks = np.asarray(chunks, dtype=np.int64)
        if chunks.shape != (self.n,):
            raise ValueError(f"chunks must hold one chunk id per position ({self.n}), got shape {chunks.shape}")
        if isinstance(buffer_chunks, bool) or int(buffer_chunks) < 1:
            raise ConfigError(f"data.buffer_chunks must be an integer >= 1, got {buffer_chunks!r}")
        self.buffer_chunks = int(buffer_chunks)
        # positions grouped by chunk: group g is _grouped[_starts[g]:_starts[g] + _sizes[g]]
        self._grouped = np.argsort(chunks, kind="stable")
        _, self._starts, self._sizes = np.unique(chunks[self._grouped], return_index=True, return_counts=True)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This rank's indices for one stream epoch: chunks shuffled, then mixed per window."""
        rng = np.random.default_rng([self.seed, self.stream, int(epoch)])
        groups = rng.permutation(len(self._sizes))
        sizes = self._sizes[groups]
        # concatenation of the groups in their new order, without a Python loop
        ends = np.cumsum(sizes)
        offsets = np.repeat(self._starts[groups] - (ends - sizes), sizes)
        sequence = self._grouped[offsets + np.arange(self.n)]
        window = np.repeat(np.arange(len(groups)) // self.buffer_chunks, sizes)
        order = sequence[np.lexsort((rng.random(self.n), window))]
        return order[self.rank * self.per_rank:(self.rank + 1) * self.per_rank]
