"""What SimGAN's training step does differently under DDP: step metrics synced over the ranks.

Each rank keeps its own history buffer of its own refined images (Sec. 2.3 applied per
rank; DDP must not broadcast buffers, see ``conf/trainer/ddp.yaml``); every rank's
buffer goes into the checkpoint (:mod:`simgan.checkpoint`).

:func:`mean_over_ranks` averages a step's logged scalars over the ranks in ONE
all-reduce, so the logged training metrics describe the whole global batch and the
adaptive K_g rule sees the same D loss on every rank (every rank must step the same
network, or the gradient all-reduces pair up wrongly).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def mean_over_ranks(values: dict[str, Tensor], strategy: Any) -> dict[str, Tensor]:
    """The scalars' means over all ranks, in one all-reduce (keys must match on every rank)."""
    keys = list(values)
    device = strategy.root_device
    stacked = torch.stack([values[k].detach().float().reshape(()).to(device) for k in keys])
    stacked = strategy.reduce(stacked, reduce_op="mean")
    return dict(zip(keys, stacked.unbind(0)))
