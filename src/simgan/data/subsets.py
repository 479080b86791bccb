"""Fixed image subsets of a DataModule's splits: validation images first, topped up from training.

Whatever measures or shows a refiner off the training loop (the validation realism
callback, the image grids, the evaluation) wants images that are the same every time
and, as far as the data allows, held out: the first ``n`` of the validation split. When
the validation split is smaller than ``n`` (``val_fraction`` of a small set), the
training split tops it up, so the count asked for is the count used and the comparison
stays the same size. :func:`validation_first` is that order; :func:`first_images` reads
its first ``n`` samples (or ``n`` from an offset, for a second, disjoint set).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset
from tqdm.auto import tqdm

SIDES = ("synthetic", "real")


def validation_first(splits: dict[str, Dataset], side: str) -> ConcatDataset:
    """``side``'s validation split followed by its training split (``splits``: the DataModule's)."""
    if side not in SIDES:
        raise ValueError(f"validation_first: side must be one of {SIDES}, got {side!r}")
    return ConcatDataset([splits[f"{side}_val"], splits[f"{side}_train"]])


def stack(dataset: Dataset, start: int, stop: int, desc: str = "read") -> tuple[Tensor, dict[str, Tensor]]:
    """Samples ``start:stop`` of a dataset of dicts -> (images, {key: stacked values}).

    ``stop`` is capped at the dataset's length; no samples give ``(torch.empty(0), {})``.
    A progress bar shows from 2,000 samples on.
    """
    stop = min(stop, len(dataset))
    samples = [dataset[i] for i in tqdm(range(start, stop), desc=desc, leave=False, mininterval=0.5,
                                        disable=stop - start < 2000)]
    if not samples:
        return torch.empty(0), {}
    images = torch.stack([s["image"] for s in samples])
    rest = {k: torch.stack([s[k] for s in samples]) for k in samples[0] if k != "image"}
    return images, rest


def first_images(splits: dict[str, Dataset], side: str, n: int, start: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """Samples ``start:start + n`` of :func:`validation_first` (fewer if the data has fewer)."""
    return stack(validation_first(splits, side), start, start + n, f"read {side}")
