"""The history buffer of refined images (paper Sec. 2.3, Algorithm 2).

D trained only on the latest refined images forgets the artifacts of earlier refiners
and R re-introduces them. So D's refined half-batch of size b is b/2 current refined
images plus b/2 drawn at random from a buffer of earlier ones, and after each D step
b/2 buffer slots are overwritten by current refined images: the empty slots first (the
buffer fills from the first refined batches), random ones once it is full.

The buffer is a registered tensor buffer: it moves with ``.to(device)`` and lives in
``state_dict``, so a resumed run continues with the history it had (a peer's buffer
that never fills is a known bug this design makes testable). ``size=0`` disables it.
Under DDP each rank keeps its own buffer of its own refined images.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class HistoryBuffer(nn.Module):
    def __init__(self, size: int, image_shape: tuple[int, int, int] | list[int]):
        super().__init__()
        if size < 0:
            raise ValueError(f"history size must be >= 0, got {size}")
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *image_shape))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.filled)

    def mix(self, refined: Tensor) -> Tensor:
        """The fake batch for D: current refined images, half of them swapped for history.

        Returns a tensor of ``refined``'s shape: the first ``b - k`` current images and
        ``k = min(b // 2, len(self))`` images drawn without replacement from the buffer.
        """
        k = min(refined.shape[0] // 2, len(self))
        if k == 0:
            return refined
        picks = torch.randperm(len(self), device=self.images.device)[:k]
        return torch.cat([refined[: refined.shape[0] - k], self.images[picks].to(refined.dtype)])

    @torch.no_grad()
    def push(self, refined: Tensor) -> None:
        """Stores b/2 random current refined images: into empty slots, then random slots."""
        if self.size == 0:
            return
        refined = refined.detach()
        half = refined[torch.randperm(refined.shape[0], device=refined.device)[: max(refined.shape[0] // 2, 1)]]
        n_new = min(len(half), self.size - len(self))
        if n_new > 0:
            start = len(self)
            self.images[start:start + n_new] = half[:n_new].to(self.images.dtype)
            self.filled += n_new
            half = half[n_new:]
        if len(half) > 0:
            slots = torch.randperm(self.size, device=self.images.device)[: len(half)]
            self.images[slots] = half.to(self.images.dtype)
