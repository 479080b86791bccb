"""What SimGAN does differently under DDP: per-rank history buffers in checkpoints, synced step metrics.

Each rank keeps its own history buffer of its own refined images (Sec. 2.3 applied per
rank; DDP must not broadcast buffers, see ``conf/trainer/ddp.yaml``). Lightning writes
checkpoints from rank zero's state only, so without help every other rank's history
would be lost and a resumed run would give all ranks rank zero's. So:

- :func:`gather_history` (called on every rank while a checkpoint is built) collects
  every rank's filled buffer on rank zero, as CPU tensors in rank order, one rank at a
  time (one extra buffer of device memory at most, whatever the world size), for
  ``checkpoint[HISTORY_PER_RANK]``;
- :func:`restore_own_history` (called on every rank when a checkpoint is read, before
  the weights are loaded) puts this rank's own buffer into the checkpoint's
  ``state_dict``. With another world size than the checkpoint's, it warns and every
  rank keeps the ``state_dict``'s buffer (rank zero's).

:func:`mean_over_ranks` averages a step's logged scalars over the ranks in ONE
all-reduce, so the logged training metrics describe the whole global batch and the
adaptive K_g rule sees the same D loss on every rank (every rank must step the same
network, or the gradient all-reduces pair up wrongly).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

log = logging.getLogger("simgan")
HISTORY_PER_RANK = "simgan_history_per_rank"


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_history(images: Tensor, filled: Tensor) -> dict[str, Any] | None:
    """On rank zero: ``{"world_size": W, "images": [rank 0's filled slots, rank 1's, ...]}``.

    A collective: every rank must call it. Returns None on the other ranks and when not
    distributed (the ``state_dict`` then holds the only buffer). Only the filled slots
    are kept (buffers fill from slot 0), so early checkpoints stay small.
    """
    rank, world = _world()
    if world < 2:
        return None
    counts = torch.zeros(world, dtype=torch.long, device=images.device)
    counts[rank] = filled.to(images.device)
    dist.all_reduce(counts)
    gathered: list[Tensor] = []
    for src, n in enumerate(counts.tolist()):
        if n == 0:
            gathered.append(images.new_empty((0, *images.shape[1:])).cpu())
            continue
        # broadcast one rank at a time: a gather would hold W buffers in rank zero's device memory
        buf = images[:n].contiguous() if rank == src else images.new_empty((n, *images.shape[1:]))
        dist.broadcast(buf, src=src)
        if rank == 0:
            gathered.append(buf.cpu())
    return {"world_size": world, "images": gathered} if rank == 0 else None


def restore_own_history(checkpoint: dict, rank: int, world: int, prefix: str = "history.") -> None:
    """Replaces the checkpoint's history buffer (rank zero's) by this rank's own, when it can."""
    saved = checkpoint.get(HISTORY_PER_RANK)
    state = checkpoint.get("state_dict", {})
    key_images, key_filled = f"{prefix}images", f"{prefix}filled"
    saved_world = int(saved["world_size"]) if saved else 1
    if saved_world != world:
        if rank == 0:
            log.warning("resume: the checkpoint holds the history buffers of %d rank(s), this run has %d: "
                        "every rank starts from rank 0's buffer", saved_world, world)
        return
    if saved is None or key_images not in state:
        return
    own = saved["images"][rank]
    images = torch.zeros(state[key_images].shape, dtype=state[key_images].dtype)
    images[:len(own)] = own
    state[key_images] = images
    state[key_filled] = torch.tensor(len(own), dtype=torch.long)


def mean_over_ranks(values: dict[str, Tensor], strategy: Any) -> dict[str, Tensor]:
    """The scalars' means over all ranks, in one all-reduce (keys must match on every rank)."""
    keys = list(values)
    device = strategy.root_device
    stacked = torch.stack([values[k].detach().float().reshape(()).to(device) for k in keys])
    stacked = strategy.reduce(stacked, reduce_op="mean")
    return dict(zip(keys, stacked.unbind(0)))
