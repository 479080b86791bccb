"""The paper's downstream protocol: train a task model, test it on held-out real images.

SimGAN is judged by what refined images are for (Sec. 3.2, Tables 2 and 3): the same
task network is trained (a) on raw synthetic images, (b) on refined synthetic images,
and, as a reference, (c) on real labeled images, and each is tested on the same
held-out *real* images. Refinement helps if (b) beats (a); (c) shows how much of the
synthetic-to-real gap is left.

This module is the one home of the task models, their error measures and the protocol
(:func:`downstream_scores`: one fresh model per training set, same seed, same test set):

- ``classify`` (class ids, e.g. ``digit``): LeNet as in Caffe's MNIST example
  (conv5-20, pool, conv5-50, pool, fc-500, fc-K); score = accuracy.
- ``regress`` (label vectors, e.g. gaze or joints): :class:`Regressor`, a small CNN
  (3 conv blocks, a 4 x 4 pooled map, fc-256, fc-D) trained on standardized targets so
  one learning rate fits radians and pixels alike; score = an error, lower is better:
  ``angle_deg`` (mean angle between the 3-D gaze vectors of predicted and true
  [yaw, pitch] in radians: Table 2's gaze error), ``joint_px`` (mean Euclidean error
  per joint, for ``J*2`` or ``J x 2`` / ``J x 3`` pixel labels: Table 3's hand-pose
  distance), ``l2`` (mean Euclidean norm of the error vector, in label units).

Both are trained from scratch with Adam, no augmentation, a fixed number of epochs and
no model selection on the test set: only the training data differ between (a), (b)
and (c), so differences in the score come from the data.

The classifier also measures label preservation during training: :func:`label_flip`,
the share of images whose class it reads differently after refinement (Eq. 4's aim).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from simgan.errors import ConfigError
from simgan.metrics.fitting import fit_epochs, predict, recalibrate_batchnorm, seeded
from simgan.metrics.images import check_images
from simgan.metrics.pupil import angle_deg

log = logging.getLogger("simgan")
TASKS = ("classify", "regress")
MODEL_NAMES = {"classify": "LeNet", "regress": "CNN regressor"}
# error measure -> unit it is reported in
ERROR_UNITS = {"angle_deg": "deg", "joint_px": "px", "l2": "label units"}


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


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)


class Regressor(nn.Module):
    """``(N, C, H, W)`` in [-1, 1] -> ``(N, out_dim)`` in label units.

    The 4 x 4 pooled map (not a global pool) keeps where things are, which gaze, pupil
    and joint labels depend on, for any input size (36x60 eyes, 224x224 hands). The net
    predicts standardized targets; the training labels' mean and std are buffers, so a
    saved model still answers in label units.
    """

    def __init__(self, channels: int = 1, out_dim: int = 2, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(channels, w, True), _block(w, 2 * w, True), _block(2 * w, 2 * w, False),
                                      nn.AdaptiveAvgPool2d((4, 4)))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 256), nn.ReLU(), nn.Linear(256, out_dim))
        self.register_buffer("target_mean", torch.zeros(out_dim))
        self.register_buffer("target_std", torch.ones(out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.target_std + self.target_mean


# --- labels -----------------------------------------------------------------------------

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


def _as_targets(labels, n: int, name: str) -> torch.Tensor:
    """Any per-sample label shape -> float (N, D); the error measures reshape it back."""
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).float()
    if len(y) != n:
        raise ValueError(f"{name}: {len(y)} labels for {n} images")
    if not torch.isfinite(y).all():
        raise ValueError(f"{name}: labels contain NaN or inf")
    return y.reshape(n, -1)


def resolve_task(task: str, labels) -> str:
    """``classify`` / ``regress`` as given; ``auto``: classify integer-valued scalar labels."""
    if task not in (*TASKS, "auto"):
        raise ConfigError(f"downstream.task must be one of {[*TASKS, 'auto']}, got {task!r}")
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    scalar = y.dim() == 1 or (y.dim() == 2 and y.shape[1] == 1)
    whole = not y.is_floating_point() or bool(torch.equal(y, y.round()))
    if task == "classify" and not (scalar and whole):
        raise ConfigError(f"downstream.task=classify needs one whole-number class id per image; the label has "
                          f"shape {tuple(y.shape[1:])}: use downstream.task=regress (or auto)")
    if task != "auto":
        return task
    return "classify" if scalar and whole else "regress"


def resolve_error(error: str, label_shape: tuple[int, ...], label_name: str = "") -> str:
    """The regression error measure; ``auto``: gaze [yaw, pitch] -> angle_deg, J x 2/3 -> joint_px, else l2."""
    if error in ERROR_UNITS:
        return error
    if error != "auto":
        raise ConfigError(f"downstream.error must be one of {[*ERROR_UNITS, 'auto']}, got {error!r}")
    if tuple(label_shape) == (2,) and "gaze" in label_name.lower():
        return "angle_deg"
    if len(label_shape) == 2 and label_shape[1] in (2, 3):
        return "joint_px"
    return "l2"


# --- error measures (per sample; lower is better) ---------------------------------------

def angle_error_deg(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Angle (deg) between the 3-D gaze vectors of (N, 2) [yaw, pitch] radians."""
    if pred.reshape(len(pred), -1).shape[1] != 2 or true.reshape(len(true), -1).shape[1] != 2:
        raise ConfigError(f"downstream.error=angle_deg needs [yaw, pitch] labels (2 values), got "
                          f"{tuple(true.shape[1:])}")
    return angle_deg(pred.reshape(-1, 2), true.reshape(-1, 2))


def joint_error_px(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance per joint: labels (N, J*2) [x, y pairs] or (N, J, 2) / (N, J, 3)."""
    dims = true.shape[2] if true.dim() == 3 else 2
    if true[0].numel() % dims:
        raise ConfigError(f"downstream.error=joint_px needs J*2, J x 2 or J x 3 labels, got {tuple(true.shape[1:])}")
    p, t = pred.reshape(len(pred), -1, dims), true.reshape(len(true), -1, dims)
    return (p - t).norm(dim=2).mean(1)


def l2_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of the error vector, per sample."""
    return (pred.reshape(len(pred), -1) - true.reshape(len(true), -1)).norm(dim=1)


ERRORS = {"angle_deg": angle_error_deg, "joint_px": joint_error_px, "l2": l2_error}


# --- classification ---------------------------------------------------------------------

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


def label_flip(model: nn.Module, synthetic: torch.Tensor, refined: torch.Tensor) -> float:
    """Share of images whose arg-max class under ``model`` changes from ``synthetic[i]`` to ``refined[i]``.

    Label preservation for class labels (the aim of Eq. 4's self-regularization): a
    classifier trained on synthetic images reads each image before and after refinement.
    """
    check_images(synthetic, "label_flip: synthetic")
    check_images(refined, "label_flip: refined")
    before = predict(model, synthetic).argmax(1)
    after = predict(model, refined).argmax(1)
    return float((before != after).float().mean())


# --- regression -------------------------------------------------------------------------

def fit_regressor(images: torch.Tensor, labels, seed: int = 0, epochs: int = 10, batch_size: int = 64,
                  lr: float = 1e-3, time_budget_s: float | None = 600.0, device: str | torch.device = "cpu",
                  show_progress: bool = True, width: int = 32) -> Regressor:
    """Trains a fresh :class:`Regressor` on ``images`` and label vectors (N, ...) by MSE on
    standardized targets; returns it in eval mode, answering in label units."""
    check_images(images, "regressor: train images")
    images = images.detach().float()
    y = _as_targets(labels, len(images), "regressor: train labels")
    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = Regressor(images.shape[1], y.shape[1], width).to(device)
    mean, std = y.mean(0), y.std(0, unbiased=False).clamp_min(1e-6)
    model.target_mean.copy_(mean)
    model.target_std.copy_(std)
    m, s = mean.to(device), std.to(device)
    fit_epochs(model, images, y, lambda p, t: F.mse_loss((p - m) / s, (t - m) / s), epochs, batch_size, lr, gen,
               time_budget_s, "downstream regressor", show_progress, device)
    # BatchNorm's running averages lag the final weights and would bias the outputs.
    recalibrate_batchnorm(model, images, 256)
    return model.eval()


def regression_error(model: nn.Module, images: torch.Tensor, labels, error: str = "l2") -> float:
    """Mean of the ``error`` measure (``angle_deg``, ``joint_px``, ``l2``) of ``model`` on labeled images."""
    check_images(images, "regressor: test images")
    if error not in ERRORS:
        raise ConfigError(f"downstream.error must be one of {list(ERRORS)}, got {error!r}")
    true = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).float()
    _as_targets(true, len(images), "regressor: test labels")
    return float(ERRORS[error](predict(model, images.float()), true).mean())


# --- the protocol -----------------------------------------------------------------------

def fit_task_model(task: str, images: torch.Tensor, labels, seed: int = 0, epochs: int = 10,
                   num_classes: int | None = None, **fit_kwargs) -> nn.Module:
    """A fresh task model for ``task`` (``classify`` / ``regress``) trained on (images, labels)."""
    if task == "classify":
        return fit_classifier(images, labels, seed=seed, epochs=epochs, num_classes=num_classes, **fit_kwargs)
    if task == "regress":
        return fit_regressor(images, labels, seed=seed, epochs=epochs, **fit_kwargs)
    raise ConfigError(f"downstream.task must be one of {list(TASKS)}, got {task!r}")


def task_score(task: str, model: nn.Module, images: torch.Tensor, labels, error: str = "l2") -> float:
    """Accuracy (``classify``, higher is better) or mean ``error`` (``regress``, lower is better)."""
    if task == "classify":
        return classifier_accuracy(model, images, labels)
    return regression_error(model, images, labels, error)


def num_classes_of(*label_sets) -> int:
    """One class count for every model of a comparison: the largest class id seen, plus one."""
    return int(max(int(_as_labels(y, len(y), "downstream: labels").max()) for y in label_sets)) + 1


def downstream_scores(train_sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
                      test: tuple[torch.Tensor, torch.Tensor], task: str = "auto", error: str = "auto",
                      label: str = "", seed: int = 0, epochs: int = 10, num_classes: int | None = None,
                      **fit_kwargs) -> dict:
    """The protocol (Sec. 3.2): a fresh task model per training set, same seed, each scored on ``test``.

    ``train_sets``: ``{name: (images, labels)}``, e.g. raw synthetic, refined, real;
    ``test``: held-out real ``(images, labels)``. ``task`` and ``error`` as in
    :func:`resolve_task` / :func:`resolve_error` (``label`` is the label's name, for
    ``auto``); every classifier gets the same class count. ``fit_kwargs`` go to
    :func:`fit_classifier` / :func:`fit_regressor` (``batch_size``, ``lr``,
    ``time_budget_s``, ``device``, ``show_progress``...).

    Returns ``accuracy_<name>`` (classify) or ``error_<name>`` (regress), ``n_train_<name>``,
    ``n_test``, ``task``, ``model``, ``label`` and, for regression, ``error_measure`` /
    ``error_unit``.
    """
    x_test, y_test = test
    for name, (x, _) in train_sets.items():
        if x.shape[1:] != x_test.shape[1:]:
            raise ValueError(f"downstream: {name} images {tuple(x.shape[1:])} and test images "
                             f"{tuple(x_test.shape[1:])} differ in shape")
    task = resolve_task(task, next(iter(train_sets.values()))[1])
    out: dict = {"task": task, "model": MODEL_NAMES[task], "label": label}
    if task == "classify":
        fit_kwargs["num_classes"] = num_classes or num_classes_of(y_test, *(y for _, y in train_sets.values()))
        key = "accuracy"
    else:
        error = resolve_error(error, tuple(y_test.shape[1:]), label)
        out.update(error_measure=error, error_unit=ERROR_UNITS[error])
        key = "error"
    for name, (x, y) in train_sets.items():
        model = fit_task_model(task, x, y, seed=seed, epochs=epochs, **fit_kwargs).cpu()
        out[f"{key}_{name}"] = task_score(task, model, x_test, y_test, error)
        out[f"n_train_{name}"] = len(x)
        log.info("downstream: %s trained on %s (%d images) -> %s %.4f on held-out real", out["model"], name,
                 len(x), key if task == "classify" else error, out[f"{key}_{name}"])
    out["n_test"] = len(x_test)
    return out


def downstream_score(train_images: torch.Tensor, train_labels, test_images: torch.Tensor, test_labels,
                     task: str = "classify", error: str = "l2", seed: int = 0, epochs: int = 10,
                     **fit_kwargs) -> float:
    """Score on ``test_images`` (held-out real) of a task model trained on ``train_images``.

    :func:`downstream_scores` for one training set. Call it three times with the same
    test set and seed: raw synthetic, refined synthetic, real labeled training images
    (paper Sec. 3.2 protocol); ``num_classes`` in ``fit_kwargs`` fixes the class count.
    """
    out = downstream_scores({"train": (train_images, train_labels)}, (test_images, test_labels), task=task,
                            error=error, seed=seed, epochs=epochs, **fit_kwargs)
    return out["accuracy_train" if out["task"] == "classify" else "error_train"]


def downstream_accuracy(train_images: torch.Tensor, train_labels, test_images: torch.Tensor, test_labels,
                        seed: int = 0, epochs: int = 10, **fit_kwargs) -> float:
    """:func:`downstream_score` for class labels: the accuracy of a LeNet."""
    return downstream_score(train_images, train_labels, test_images, test_labels, "classify", seed=seed,
                            epochs=epochs, **fit_kwargs)
