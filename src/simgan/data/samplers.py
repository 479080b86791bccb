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


class ResumableBatchSampler(Sampler[list[int]]):
    def __init__(self, n: int, batch_size: int, seed: int, stream: int, rank: int = 0, world_size: int = 1,
                 start: int = 0, name: str = "stream"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n, self.batch_size, self.stream = int(n), int(batch_size), int(stream)
        self.seed = int(seed) % 2**63  # SeedSequence takes non-negative ints only
        self.rank, self.world_size, self.start = int(rank), int(world_size), int(start)
        self.per_rank = self.n // self.world_size
        self.batches_per_epoch = self.per_rank // self.batch_size
        if self.batches_per_epoch < 1:
            raise ConfigError(
                f"data.batch_size={batch_size} is larger than the {name} training split per device "
                f"({self.n} images / {world_size} device(s) = {self.per_rank}); use a smaller batch or more data")

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
