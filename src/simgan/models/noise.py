"""Per-image noise maps that are a fixed function of the image: randomness R can paint with.

The paper's refiner is a deterministic function of its input, and a clean render has
flat regions (skin, sclera) where every pixel sees the same neighbourhood, so R can only
paint them flat: the sensor noise, skin texture and compression blocks of real webcam
crops are out of its reach, and a classifier tells refined from real by that alone.
PixelDA (Bousmalis et al., CVPR 2017) gives its pixel-level generator a noise input
beside the source image for this reason. Here the noise is not drawn from a generator
but *hashed* from the image's own pixels and each pixel's position, with integer
arithmetic only:

- the same synthetic image always refines the same way, on any device, in any batch,
  shard or resumed chunk of ``refine.py`` (which a random draw would break), and the
  exported TorchScript/ONNX refiner needs no random-number state;
- two different images get unrelated noise fields, so R cannot learn a fixed pattern.

The maps are uniform in [-1, 1), one per requested channel, and are not
differentiable (they are constants, like the image they are hashed from).
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK = 0xFFFFFFFF
# odd multipliers below 2**31, so every product of a 32-bit value fits in int64
_M1, _M2, _M3 = 0x7FEB352D, 0x5BD1E995, 0x27D4EB2F


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash (the xor-shift-multiply rounds of lowbias32), on int64 tensors."""
    x = x & _MASK
    x = ((x ^ (x >> 16)) * _M1) & _MASK
    x = ((x ^ (x >> 15)) * _M2) & _MASK
    return x ^ (x >> 16)


def hashed_noise(images: Tensor, channels: int) -> Tensor:
    """``(B, channels, H, W)`` noise in [-1, 1) hashed from ``images`` (B, C, H, W) in [-1, 1]."""
    b, c, h, w = images.shape
    device = images.device
    # the image's key: its 8-bit pixel values weighted by a hash of their position
    levels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().long().flatten(1)  # (B, C*H*W)
    position = _mix(torch.arange(c * h * w, device=device, dtype=torch.long) * _M3 + 1) >> 1  # < 2**31
    key = _mix((levels * position).sum(dim=1))  # (B,)
    pixel = torch.arange(channels * h * w, device=device, dtype=torch.long).view(1, channels, h, w)
    bits = _mix(_mix(pixel * _M1 + 0x9E3779B9) ^ key.view(b, 1, 1, 1))
    return (bits >> 8).to(images.dtype if images.is_floating_point() else torch.float32) * (2.0 / (1 << 24)) - 1.0


__all__ = ["hashed_noise"]
