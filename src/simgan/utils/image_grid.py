"""A PNG grid of image columns (synthetic | refined | real), written without torchvision."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> N x H x W x C uint8."""
    images = images.detach().float().cpu().clamp(-1, 1)
    return ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def make_grid(columns: Sequence[torch.Tensor], pad: int = 2, scale: int = 2) -> Image.Image:
    """One column per tensor (N x C x H x W in [-1, 1]), rows = samples, upscaled ``scale`` x."""
    columns = [to_uint8(c) for c in columns]
    n = min(len(c) for c in columns)
    h, w, ch = columns[0].shape[1:]
    canvas = np.full((n * (h + pad) + pad, len(columns) * (w + pad) + pad, ch), 255, dtype=np.uint8)
    for j, column in enumerate(columns):
        for i in range(n):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y:y + h, x:x + w] = column[i]
    image = Image.fromarray(canvas[..., 0] if ch == 1 else canvas)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def save_grid(columns: Sequence[torch.Tensor], path: str | Path, **kwargs) -> Image.Image:
    image = make_grid(columns, **kwargs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return image
