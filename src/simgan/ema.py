"""An exponential moving average of the refiner's weights (Yazici et al., ICLR 2019).

GAN generators oscillate around a good solution instead of settling on it, because D
keeps moving; averaging the weights over the last few hundred refiner steps cancels the
oscillation. Yazici et al. ("The Unusual Effectiveness of Averaging in GAN Training")
found the exponential average better in FID than the last iterate across datasets, at
no training cost. The average is a second copy of R, never trained: after each refiner
optimizer step ``w_ema <- d * w_ema + (1 - d) * w`` with ``d = min(decay, (1 + t) /
(10 + t))`` at the t-th update, so that early on the average follows R closely instead
of remembering its random start (the warm-up of TensorFlow's ExponentialMovingAverage).

The copy lives in the LightningModule as ``refiner_ema``: its weights and the update
count are in every checkpoint (``refiner_ema.*`` keys beside ``refiner.*``), and when it
exists, validation, the image grids, evaluation and refine all use it.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class WeightEMA(nn.Module):
    """A frozen copy of ``model`` whose weights track an exponential average of ``model``'s."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"model.ema.decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.average = copy.deepcopy(model).requires_grad_(False).eval()
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        t = float(self.updates)
        decay = min(self.decay, (1.0 + t) / (10.0 + t))
        for avg, new in zip(self.average.parameters(), model.parameters(), strict=True):
            avg.lerp_(new.detach().to(avg.dtype), 1.0 - decay)
        for avg, new in zip(self.average.buffers(), model.buffers(), strict=True):
            avg.copy_(new)

    def forward(self, x: Tensor) -> Tensor:
        return self.average(x)

    def train(self, mode: bool = True) -> "WeightEMA":
        # the average is never trained: Lightning's model.train() must not flip it
        super().train(mode)
        self.average.eval()
        return self
