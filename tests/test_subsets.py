"""simgan.data.subsets: the first n validation images, topped up from training, in one order."""

from __future__ import annotations

import pytest
import torch


class _Samples:
    """A dataset of dicts whose images hold their own tag (split * 100 + position)."""

    def __init__(self, tag: int, n: int):
        self.tag, self.n = tag, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.full((1, 2, 2), float(self.tag * 100 + i)), "index": torch.tensor(i)}


def _tags(images: torch.Tensor) -> list[int]:
    return [int(x) for x in images[:, 0, 0, 0]]


def test_validation_first_then_topped_up_from_training():
    from simgan.data.subsets import first_images

    splits = {"synthetic_val": _Samples(1, 3), "synthetic_train": _Samples(2, 5),
              "real_val": _Samples(3, 10), "real_train": _Samples(4, 5)}
    images, rest = first_images(splits, "synthetic", 5)
    assert _tags(images) == [100, 101, 102, 200, 201] and rest["index"].tolist() == [0, 1, 2, 0, 1]
    after, _ = first_images(splits, "synthetic", 2, start=5)  # the next ones: disjoint
    assert _tags(after) == [202, 203]
    assert _tags(first_images(splits, "real", 4)[0]) == [300, 301, 302, 303]  # no top-up needed
    assert len(first_images(splits, "synthetic", 100)[0]) == 8  # all there is
    with pytest.raises(ValueError, match="side"):
        first_images(splits, "refined", 1)
