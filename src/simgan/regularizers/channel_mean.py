"""psi = mean over colour channels: self-regularization on intensity only.

For colour images the paper (Sec. 3.3, and the psi discussion after Eq. 4) takes
psi as the mean of the colour channels, so ``|| psi(R(x)) - psi(x) ||_1`` ties the
refined image's *intensity* to the synthetic one while leaving hue and saturation
free: the refiner may recolour (e.g. realistic skin or lighting tints) but must not
move structure that carries the label. On a grayscale image this equals identity.
"""

from __future__ import annotations

import torch

from simgan.regularizers.base import FeatureMap


class ChannelMean(FeatureMap):
    """``psi(x) = mean_c x[:, c]`` with keepdim: ``(B, C, H, W) -> (B, 1, H, W)``."""

    def __init__(self) -> None:
        super().__init__()
        self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1, keepdim=True)
