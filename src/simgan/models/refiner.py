"""The refiner network R (paper Sec. 3.1 and Appendix A).

R maps a synthetic image to a refined one of the same size: a 3x3 convolution to
``width`` feature maps, ``num_blocks`` ResNet blocks (two convolutions of ``width``
maps with a skip connection), and a 1x1 convolution back to the image's channels,
squashed by tanh into [-1, 1], the range every image in the project is normalized to.
The net is fully convolutional with no striding or pooling, so every output pixel sees
a local neighbourhood of its own input pixel: R changes appearance, not geometry.

Gaze (Sec. 3.1): 4 blocks of 64 maps, 3x3 kernels. Hand depth (Sec. 3.3): 10 blocks;
some public ports use 7x7 kernels there (``kernel_size=7``).

Padding (``padding``): the paper does not say. With zero padding every convolution
sees a black frame around the image, and ten convolutions deep the refiner learns to
paint that frame: refined eyes carried a light ring along the border, a brightness step
of 12 grey levels between the outer pixel ring and the next (real eyes: 6, raw
synthetic: 2.3). Reflection padding, which CycleGAN's generators use "to reduce
artifacts", shows each convolution a continuation of the image instead, so there is no
border for R to find. ``zeros`` stays the class default so that refiners trained
before this option load and refine exactly as they did; the configs default to
``reflect``.

Noise input (``noise_channels``, 0 in the paper): that many maps of per-image noise
(:func:`simgan.models.noise.hashed_noise`, a fixed function of the image) are stacked
onto the input, so that R can paint texture and sensor noise into regions a clean render
leaves flat; the output keeps the image's channels, and self-regularization still ties
it to the input image.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simgan.models.noise import hashed_noise

PADDING_MODES = ("zeros", "reflect", "replicate")


def _conv(c_in: int, c_out: int, kernel_size: int, padding: str) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, padding_mode=padding)


class ResnetBlock(nn.Module):
    """conv - ReLU - conv, plus the input, then ReLU (He et al. 2016, as in the paper)."""

    def __init__(self, width: int, kernel_size: int, padding: str = "zeros"):
        super().__init__()
        self.body = nn.Sequential(
            _conv(width, width, kernel_size, padding),
            nn.ReLU(inplace=True),
            _conv(width, width, kernel_size, padding),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


class Refiner(nn.Module):
    """R: synthetic image in [-1, 1] -> refined image in [-1, 1], same shape."""

    def __init__(self, channels: int = 1, width: int = 64, num_blocks: int = 4, kernel_size: int = 3,
                 padding: str = "zeros", noise_channels: int = 0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the image size is kept, got {kernel_size}")
        if padding not in PADDING_MODES:
            raise ValueError(f"model.refiner.padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}")
        if noise_channels < 0:
            raise ValueError(f"model.refiner.noise_channels must be >= 0, got {noise_channels}")
        self.channels = channels
        self.noise_channels = noise_channels
        self.stem = nn.Sequential(_conv(channels + noise_channels, width, kernel_size, padding), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResnetBlock(width, kernel_size, padding) for _ in range(num_blocks)])
        self.head = nn.Conv2d(width, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.noise_channels:
            x = torch.cat([x, hashed_noise(x, self.noise_channels).to(x.dtype)], dim=1)
        return self.head(self.blocks(self.stem(x))).tanh()
