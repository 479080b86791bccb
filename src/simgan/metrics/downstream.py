"""The paper's downstream protocol: train a task model, test it on held-out real images.

SimGAN is judged by what refined images are for (Sec. 3.2, Tables 2 and 3): the same
task network is trained (a) on raw synthetic images, (b) on refined synthetic images,
and, as a reference, (c) on real labeled images, and each is tested on the same
held-out *real* images. Refinement helps if (b) beats (a); (c) shows how much of the
synthetic-to-real gap is left. Here the task is digit classification on the ``digits``
benchmark (rendered digits vs real MNIST, see :mod:`simgan.data.mnist`), so the score is
accuracy.

The task model is LeNet as in Caffe's MNIST example (conv5-20, pool, conv5-50, pool,
fc-500, fc-K), trained from scratch with Adam, no augmentation, a fixed number of
epochs, and no model selection on the test set: only the training data differ between
(a), (b) and (c), so differences in accuracy come from the data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from simgan.metrics._common import check_images, fit_epochs, predict, seeded


class LeNet(nn.Module):
    """LeNet for ``(N, C, H, W)`` images in [-1, 1] -> ``(N, num_classes)`` logits."""

    def __init__(self, channels: int = 1, height: int = 28, width: int = 28, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = 50 * (height // 4) * (width // 4)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat, 500), nn.ReLU(), nn.Linear(500, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _as_labels(labels, n: int, name: str) -> torch.Tensor:
    # Stores hand labels out as float32 tensors; class ids must be whole numbers.
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{name}: {len(y)} labels for {n} images")
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise ValueError(f"{name}: class labels must be whole numbers")
        y = y.round()
    y = y.long()
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"{name}: class labels must be >= 0, got {int(y.min())}")
    return y


def fit_classifier(images: torch.Tensor, labels, seed: int = 0, epochs: int = 10, num_classes: int | None = None,
                   batch_size: int = 64, lr: float = 1e-3, time_budget_s: float | None = 600.0,
                   device: str | torch.device = "cpu", show_progress: bool = True) -> LeNet:
    """Trains a fresh :class:`LeNet` on ``images`` (float N x C x H x W in [-1, 1]) and
    integer ``labels`` (N,); returns it in eval mode. Deterministic for ``seed``; stops
    after ``epochs`` or ``time_budget_s`` seconds."""
    check_images(images, "classifier: train images")
    images = images.detach().float()
    y = _as_labels(labels, len(images), "classifier: train labels")
    k = num_classes if num_classes is not None else int(y.max()) + 1
    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = LeNet(images.shape[1], images.shape[2], images.shape[3], k).to(device)
    fit_epochs(model, images, y, F.cross_entropy, epochs, batch_size, lr, gen, time_budget_s,
               "downstream classifier", show_progress, device)
    return model.eval()


def classifier_accuracy(model: nn.Module, images: torch.Tensor, labels) -> float:
    """Fraction of ``images`` whose arg-max class equals ``labels``."""
    check_images(images, "classifier: test images")
    y = _as_labels(labels, len(images), "classifier: test labels")
    return float((predict(model, images.float()).argmax(1) == y).float().mean())


def downstream_accuracy(train_images: torch.Tensor, train_labels, test_images: torch.Tensor, test_labels,
                        seed: int = 0, epochs: int = 10, **fit_kwargs) -> float:
    """Accuracy on ``test_images`` (held-out real) of a LeNet trained on ``train_images``.

    Call it three times with the same test set and seed: raw synthetic, refined
    synthetic, real labeled training images (paper Sec. 3.2 protocol). ``fit_kwargs`` go
    to :func:`fit_classifier` (``batch_size``, ``lr``, ``time_budget_s``, ``device``...).
    """
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"downstream: train images {tuple(train_images.shape[1:])} and test images "
                         f"{tuple(test_images.shape[1:])} differ in shape")
    y_test = _as_labels(test_labels, len(test_images), "downstream: test labels")
    y_train = _as_labels(train_labels, len(train_images), "downstream: train labels")
    k = fit_kwargs.pop("num_classes", None) or int(max(y_train.max(), y_test.max())) + 1
    model = fit_classifier(train_images, y_train, seed=seed, epochs=epochs, num_classes=k, **fit_kwargs)
    return classifier_accuracy(model, test_images, y_test)
