"""What every feature map psi shares: frozen, always in eval mode, images in [-1, 1].

The self-regularization loss ``lambda * || psi(R(x)) - psi(x) ||_1`` (paper Eq. 4)
trains the refiner *through* psi, so psi must be a fixed measuring stick: its weights
never receive updates and its BatchNorm statistics never drift with the refined images
(otherwise the loss could be lowered by moving the ruler instead of the refiner).
Gradients still flow through psi to its input.
"""

from __future__ import annotations

import torch
from torch import nn


class FeatureMap(nn.Module):
    """Base class for psi: call :meth:`freeze` at the end of ``__init__``.

    Subclasses implement ``forward(x)`` with ``x`` of shape ``(B, C, H, W)`` in
    ``[-1, 1]`` (C = 1 or 3) and return a ``(B, C', H', W')`` feature tensor.
    """

    def freeze(self) -> "FeatureMap":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> "FeatureMap":
        # A parent's .train() must not switch BatchNorm/Dropout inside psi to
        # training behaviour: the measuring stick has to stay fixed.
        return super().train(False)


def to_rgb01(x: torch.Tensor) -> torch.Tensor:
    """Map ``(B, 1|3, H, W)`` images in [-1, 1] to 3-channel RGB in [0, 1].

    ImageNet networks expect three channels; a grayscale image is the same
    intensity on R, G and B, so repeating it is the faithful conversion.
    """
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"psi expects images of shape (B, 1 or 3, H, W), got {tuple(x.shape)}"
        )
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x + 1.0) * 0.5
