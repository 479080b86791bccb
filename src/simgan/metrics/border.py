"""Border step: how strongly a refiner frames its images (a zero-padding artifact).

A fully convolutional refiner with zero padding sees a black frame around every image
at every layer and learns to paint a light or dark ring along the border, which no
real crop has. The measure: per image, the mean of the outermost pixel ring minus the
mean of the ring just inside it, absolute, averaged over images, in grey levels of
0-255 (images in [-1, 1]). Compare a refined set with its real set: a refiner without
the artifact lands near the real images' own value (camera vignetting and crop edges
give real eyes a few grey levels too), raw renders near theirs.
"""

from __future__ import annotations

from torch import Tensor


def _ring_mean(images: Tensor, inset: int) -> Tensor:
    """Per-image mean of the pixel ring ``inset`` pixels in from the border, (N,)."""
    x = images.float()
    h, w = x.shape[-2:]
    inner = x[..., inset:h - inset, inset:w - inset]
    core = inner[..., 1:-1, 1:-1]
    ring_sum = inner.sum(dim=(-3, -2, -1)) - core.sum(dim=(-3, -2, -1))
    ring_count = inner[0].numel() - core[0].numel()
    return ring_sum / ring_count


def border_step(images: Tensor, signed: bool = False) -> float:
    """Mean |outer ring - next ring| of ``images`` (N, C, H, W) in [-1, 1], in grey levels 0-255.

    ``signed=True`` averages the signed step instead (> 0: a lighter border), which tells a
    light frame from a dark one and from the scene's own brightness profile: real eye
    crops are lighter toward the border (skin around a dark eye), by about 6 levels.
    """
    if images.ndim != 4 or min(images.shape[-2:]) < 5:
        raise ValueError(f"border_step needs (N, C, H, W) images of at least 5x5, got {tuple(images.shape)}")
    step = _ring_mean(images, 0) - _ring_mean(images, 1)
    return float((step if signed else step.abs()).mean() * 127.5)


__all__ = ["border_step"]
