"""Classifier two-sample test (C2ST): can a fresh CNN tell set ``a`` from set ``b``?

The paper measures realism with people: in its "visual Turing test" (Sec. 3.1) subjects
sorted real vs refined eye images and were right 517 times out of 1000 (51.7%), close to
the 50% of coin flipping, vs 162/200 (81%) for real vs raw synthetic. A C2ST (Lopez-Paz &
Oquab, ICLR 2017) is that test with a classifier for the subject: train a small CNN on
half of each set to say "a" or "b", then score the other half. Held-out accuracy near 0.5
(AUC near 0.5) means the CNN found nothing that separates the sets; near 1.0 means the
sets are easy to tell apart. Unlike the human study, the judge here is a fresh network
trained on the two sets, not SimGAN's own discriminator, so the refiner was never
optimised against it.

Reading the numbers: accuracy is measured on ``n_test`` images (``n_test / 2`` of each set),
so under "indistinguishable" it scatters around 0.5 with standard deviation
``0.5 / sqrt(n_test)`` (0.025 for 400); ``p_value`` is the one-sided binomial test of
"accuracy > 0.5". A weak judge (few epochs, tiny sets) can only miss differences, never
invent them: a low C2ST score is evidence of realism only to the extent the judge was
given enough data and training time.
"""

from __future__ import annotations

import time

import torch
from scipy.stats import binomtest
from torch import nn
from torch.nn import functional as F
from torchmetrics.functional.classification import binary_auroc

from simgan.metrics.fitting import fit_epochs, predict, recalibrate_batchnorm, seeded
from simgan.metrics.images import check_images


class TwoSampleJudge(nn.Module):
    """Small CNN, one logit ("this image is from b"): three conv blocks, global pooling.

    Global average pooling makes it a test of local appearance (texture, stroke, noise),
    which is what refinement changes, and lets it take any image size.
    """

    def __init__(self, channels: int = 1, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(channels, width), nn.MaxPool2d(2), block(width, 2 * width),
                                      nn.MaxPool2d(2), block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def c2st(a: torch.Tensor, b: torch.Tensor, seed: int = 0, max_epochs: int = 10,
         time_budget_s: float | None = 120.0, test_fraction: float = 0.5, batch_size: int = 64,
         lr: float = 1e-3, device: str | torch.device = "cpu", show_progress: bool = True) -> dict[str, float]:
    """Trains a fresh :class:`TwoSampleJudge` to separate ``a`` from ``b``; scores held-out images.

    ``a``, ``b``: float N x C x H x W in [-1, 1] (same C, H, W; sizes may differ). Both sets
    are subsampled to the smaller size, so the classes are balanced and 0.5 is chance;
    each is then split ``1 - test_fraction`` / ``test_fraction`` into train / test.
    Deterministic for a given ``seed`` (subsets, split, shuffling, weight init), on the
    same hardware and thread count. Training stops after ``max_epochs`` or when
    ``time_budget_s`` has passed, whichever is first.

    Returns ``{"accuracy", "auc", "n_train", "n_test", "p_value", "epochs", "seconds"}``:
    held-out accuracy at threshold 0.5 and ROC AUC (torchmetrics), image counts of both
    sets together, and how long it trained.
    """
    check_images(a, "c2st: a")
    check_images(b, "c2st: b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"c2st: image shapes differ: a {tuple(a.shape[1:])}, b {tuple(b.shape[1:])}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"c2st: test_fraction must be in (0, 1), got {test_fraction}")
    gen = torch.Generator().manual_seed(seed)
    n = min(len(a), len(b))
    n_test = int(round(n * test_fraction))
    n_train = n - n_test
    if n_train < 1 or n_test < 1:
        raise ValueError(f"c2st: need at least 2 images per set, got {len(a)} and {len(b)}")
    ia = torch.randperm(len(a), generator=gen)[:n]
    ib = torch.randperm(len(b), generator=gen)[:n]
    a, b = a.detach().cpu().float(), b.detach().cpu().float()
    x_train = torch.cat([a[ia[:n_train]], b[ib[:n_train]]])
    y_train = torch.cat([torch.zeros(n_train), torch.ones(n_train)])
    x_test = torch.cat([a[ia[n_train:]], b[ib[n_train:]]])
    y_test = torch.cat([torch.zeros(n_test), torch.ones(n_test)])

    with seeded(seed):
        judge = TwoSampleJudge(channels=a.shape[1]).to(device)
    started = time.monotonic()
    epochs = fit_epochs(judge, x_train, y_train, F.binary_cross_entropy_with_logits, max_epochs, batch_size, lr,
                        gen, time_budget_s, "c2st", show_progress, device)

    recalibrate_batchnorm(judge, x_train, batch_size)
    logits = predict(judge, x_test)
    correct = int(((logits > 0).float() == y_test).sum())
    return {
        "accuracy": correct / len(y_test),
        "auc": float(binary_auroc(torch.sigmoid(logits), y_test.long())),
        "n_train": 2 * n_train,
        "n_test": 2 * n_test,
        "p_value": float(binomtest(correct, len(y_test), 0.5, alternative="greater").pvalue),
        "epochs": epochs,
        "seconds": time.monotonic() - started,
    }


def gap_closed(synthetic_accuracy: float, refined_accuracy: float) -> float:
    """Share of the synthetic-vs-real C2ST gap (accuracy above chance, 0.5) that refinement removed.

    1: refined images are as hard to tell from real as chance allows; 0: no better than raw
    synthetic (or raw synthetic was already at chance); negative: refinement made them
    easier to spot. The paper's human subjects went from 81% to 51.7% (Sec. 3.1): 0.95.
    """
    gap = synthetic_accuracy - 0.5
    return (synthetic_accuracy - refined_accuracy) / gap if gap > 0 else 0.0
