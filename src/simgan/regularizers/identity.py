"""psi = identity: self-regularization in pixel space.

Paper Eq. 4 with psi the identity gives ``lambda * || R(x) - x ||_1``: the refined
image must stay close to the synthetic one pixel by pixel. The paper uses this for
gaze estimation (Sec. 3.1, grayscale UnityEyes -> MPIIGaze eyes), where the label
(gaze direction) is carried by where the iris and eyelids are, so keeping pixels
close keeps the label valid. It is also the strictest choice: any change of
appearance costs as much as a change of geometry.
"""

from __future__ import annotations

import torch

from simgan.regularizers.base import FeatureMap


class Identity(FeatureMap):
    """``psi(x) = x``: returns the input unchanged, ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self) -> None:
        super().__init__()
        self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
