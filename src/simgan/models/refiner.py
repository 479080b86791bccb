"""The refiner network R (paper Sec. 3.1 and Appendix A).

R maps a synthetic image to a refined one of the same size: a 3x3 convolution to
``width`` feature maps, ``num_blocks`` ResNet blocks (two convolutions of ``width``
maps with a skip connection), and a 1x1 convolution back to the image's channels,
squashed by tanh into [-1, 1], the range every image in the project is normalized to.
The net is fully convolutional with no striding or pooling, so every output pixel sees
a local neighbourhood of its own input pixel: R changes appearance, not geometry.

Gaze (Sec. 3.1): 4 blocks of 64 maps, 3x3 kernels. Hand depth (Sec. 3.3): 10 blocks;
some peers use 7x7 kernels there (``kernel_size=7``).
"""

from __future__ import annotations

from torch import Tensor, nn


class ResnetBlock(nn.Module):
    """conv - ReLU - conv, plus the input, then ReLU (He et al. 2016, as in the paper)."""

    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(width, width, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, kernel_size, padding=pad),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


class Refiner(nn.Module):
    """R: synthetic image in [-1, 1] -> refined image in [-1, 1], same shape."""

    def __init__(self, channels: int = 1, width: int = 64, num_blocks: int = 4, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the image size is kept, got {kernel_size}")
        self.channels = channels
        self.stem = nn.Sequential(nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResnetBlock(width, kernel_size) for _ in range(num_blocks)])
        self.head = nn.Conv2d(width, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x))).tanh()
