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

from simgan.metrics.features import EfficientNetLite0Pooled
from simgan.metrics.fitting import progress, seeded
from simgan.metrics.images import check_images


@lru_cache(maxsize=4)
def default_extractor(size: int = 128) -> EfficientNetLite0Pooled:
    """One frozen extractor per input size per process (loading weights takes ~0.3 s)."""
    return EfficientNetLite0Pooled(size=size)


def kid_many(real: torch.Tensor, others: dict[str, torch.Tensor], subset_size: int = 1000, subsets: int = 100,
             size: int = 128, batch_size: int = 64, seed: int = 0, extractor: torch.nn.Module | None = None,
             device: str | torch.device = "cpu", show_progress: bool = True) -> dict[str, dict[str, float]]:
    """KID of each set in ``others`` against ``real``, extracting the real features once.

    Each pair gets the same number as :func:`kid` (same extractor, same seeded subset
    draws) at about half the cost of separate calls: the extractor is most of the time on
    a CPU, and ``reset_real_features=False`` keeps the real side between the pairs.
    ``subset_size`` is capped at the smallest set (torchmetrics requires
    ``subset_size <= N``). ``extractor`` replaces the default
    :class:`~simgan.metrics.features.EfficientNetLite0Pooled` and is used where it is;
    the default one is moved to ``device`` for the call and back to the CPU after.

    Returns ``{name: {"kid_mean", "kid_std", "subset_size", "n_a", "n_b"}}``.
    """
    check_images(real, "kid: real")
    for name, x in others.items():
        check_images(x, f"kid: {name}")
        if x.shape[1] != real.shape[1]:
            raise ValueError(f"kid: channel counts differ: real {real.shape[1]}, {name} {x.shape[1]}")
    subset_size = min([subset_size, len(real), *(len(x) for x in others.values())])
    if subset_size < 2:
        raise ValueError(f"kid: need at least 2 images per set, got {[len(real), *map(len, others.values())]}")
    feature = extractor if extractor is not None else default_extractor(size).to(device)
    device = next(feature.parameters()).device
    with warnings.catch_warnings():
        # "will save all extracted features in buffer": expected, the sets are small.
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(feature=feature, subsets=subsets, subset_size=subset_size,
                                         reset_real_features=False).to(device)
    total = sum(-(-len(x) // batch_size) for x in (real, *others.values()))
    out = {}
    with progress(total, "kid features", show_progress) as bar:
        for x in real.split(batch_size):
            metric.update(x.to(device), real=True)
            bar.update(1)
        for name, images in others.items():
            metric.reset()  # drops the fake features only
            for x in images.split(batch_size):
                metric.update(x.to(device), real=False)
                bar.update(1)
            with seeded(seed):  # compute() draws its subsets from torch's global RNG
                mean, std = metric.compute()
            out[name] = {"kid_mean": float(mean), "kid_std": float(std), "subset_size": subset_size,
                         "n_a": len(real), "n_b": len(images)}
    if extractor is None:
        feature.to("cpu")  # the cached extractor is shared; leave it on the CPU for the next call
    return out


def kid(a: torch.Tensor, b: torch.Tensor, subset_size: int = 1000, subsets: int = 100, size: int = 128,
        batch_size: int = 64, seed: int = 0, extractor: torch.nn.Module | None = None,
        show_progress: bool = True) -> dict[str, float]:
    """KID between sets ``a`` (the "real" side) and ``b``; float N x C x H x W in [-1, 1].

    :func:`kid_many` for one pair: ``subset_size`` is capped at the smaller set's size (say
    which value was used when reporting: it is returned); the subset draws are seeded, so a
    call is deterministic. ``extractor`` replaces the default
    :class:`~simgan.metrics.features.EfficientNetLite0Pooled` (e.g. a GPU copy).

    Returns ``{"kid_mean", "kid_std", "subset_size", "n_a", "n_b"}``.
    """
    return kid_many(a, {"b": b}, subset_size=subset_size, subsets=subsets, size=size, batch_size=batch_size,
                    seed=seed, extractor=extractor, show_progress=show_progress)["b"]
