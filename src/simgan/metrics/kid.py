"""Kernel Inception Distance between two image sets, on EfficientNet-Lite0 features.

The paper judges realism by a human study (Sec. 3.1: 517/1000 = 51.7% correct on real vs
refined) and by downstream accuracy; KID (Binkowski et al., ICLR 2018) is the automatic
distribution distance used since: the squared MMD between the two sets' feature vectors
under the polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, estimated without bias on
random subsets (``subsets`` draws of ``subset_size`` per set; mean and std reported).
0 means the feature distributions match; the unbiased estimate scatters around 0 (it can
be slightly negative) when they do. It assumes two *independent* samples: passing the
same images as both sets gives a clearly negative value (torchmetrics' cross term then
includes each image paired with itself), so compare disjoint sets. Unlike FID it is unbiased at small sample sizes,
which suits the few thousand images a benchmark here has.

**Comparability.** The features are *not* Inception-v3's (see
:mod:`simgan.metrics.features`: EfficientNet-Lite0 ImageNet weights, 1280-d global pool,
images upsampled to a 128 px shorter side). Published FID/KID numbers (Inception-v3
pool3 at 299 px via torch-fidelity) are therefore not comparable with these: the scale
and even the ranking of methods can differ. Compare KID values only within this project,
with the same ``size`` and ``subset_size``.

Computed with torchmetrics' ``KernelInceptionDistance(feature=<module>)``: with a custom
module it passes the images straight through (no uint8 conversion, no
``num_features`` needed; FID would need one), so the module takes [-1, 1] floats.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
from torchmetrics.image.kid import KernelInceptionDistance

from simgan.metrics._common import check_images, progress, seeded
from simgan.metrics.features import EfficientNetLite0Pooled


@lru_cache(maxsize=4)
def default_extractor(size: int = 128) -> EfficientNetLite0Pooled:
    """One frozen extractor per input size per process (loading weights takes ~0.3 s)."""
    return EfficientNetLite0Pooled(size=size)


def kid(a: torch.Tensor, b: torch.Tensor, subset_size: int = 1000, subsets: int = 100, size: int = 128,
        batch_size: int = 64, seed: int = 0, extractor: torch.nn.Module | None = None,
        show_progress: bool = True) -> dict[str, float]:
    """KID between sets ``a`` (the "real" side) and ``b``; float N x C x H x W in [-1, 1].

    ``subset_size`` is capped at the smaller set's size (torchmetrics requires
    ``subset_size <= N``); say which value was used when reporting (it is returned).
    The subset draws are seeded, so a call is deterministic. ``extractor`` replaces the
    default :class:`~simgan.metrics.features.EfficientNetLite0Pooled` (e.g. a GPU copy).

    Returns ``{"kid_mean", "kid_std", "subset_size", "n_a", "n_b"}``.
    """
    check_images(a, "kid: a")
    check_images(b, "kid: b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: channel counts differ: a {a.shape[1]}, b {b.shape[1]}")
    subset_size = min(subset_size, len(a), len(b))
    if subset_size < 2:
        raise ValueError(f"kid: need at least 2 images per set, got {len(a)} and {len(b)}")
    feature = extractor if extractor is not None else default_extractor(size)
    with warnings.catch_warnings():
        # "will save all extracted features in buffer": expected, the sets are small.
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(feature=feature, subsets=subsets, subset_size=subset_size)
    device = next(feature.parameters()).device
    batches = [(x, real) for x, real in ((a, True), (b, False)) for x in x.split(batch_size)]
    with progress(len(batches), "kid features", show_progress) as bar:
        for x, real in batches:
            metric.update(x.to(device), real=real)
            bar.update(1)
    with seeded(seed):  # compute() draws its subsets from torch's global RNG
        mean, std = metric.compute()
    return {"kid_mean": float(mean), "kid_std": float(std), "subset_size": subset_size,
            "n_a": len(a), "n_b": len(b)}
