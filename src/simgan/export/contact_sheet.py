"""``<output>.png``: the first input images beside their refined versions, for a glance."""

from __future__ import annotations

from pathlib import Path

import torch

from simgan.data.store import StoreDataset
from simgan.utils.image_grid import save_grid


def contact_sheet(input: Path, output: Path, n: int) -> Path:
    """Two columns (input | refined), ``n`` rows, read back from both stores as training would."""
    before, after = StoreDataset(input), StoreDataset(output)
    n = min(n, len(before))
    pick = lambda ds: torch.stack([ds[i]["image"] for i in range(n)])  # noqa: E731
    path = output.with_name(output.name + ".png")
    save_grid([pick(before), pick(after)], path)
    return path
