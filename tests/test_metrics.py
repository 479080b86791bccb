"""simgan.metrics: each metric moves the right way on constructed cases (CPU, seconds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan.metrics.c2st import c2st
from simgan.metrics.downstream import classifier_accuracy, downstream_accuracy, fit_classifier
from simgan.metrics.features import EfficientNetLite0Pooled
from simgan.metrics.kid import default_extractor, kid
from simgan.metrics.pupil import PupilRegressor, angle_deg, fit_label_regressor, label_shift, regressor_error

torch.set_num_threads(1)

MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist" / "mnist_train_5k.npz"


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 shipped real MNIST digits in [-1, 1], in a fixed random order (the file is sorted by class)."""
    with np.load(MNIST) as f:
        images, labels = f["images"], f["labels"]
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    x = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1.0
    return x[order], torch.from_numpy(labels)[order]


# --- C2ST -------------------------------------------------------------------------------

def test_c2st_same_distribution_is_chance(digits):
    x, _ = digits
    r = c2st(x[:300], x[300:600], seed=0, max_epochs=3, show_progress=False)
    # 300 held-out images: under the null, sd of accuracy = 0.5 / sqrt(300) = 0.029;
    # +-0.1 is 3.4 sd (and about the paper's human 51.7% vs an 81% "easy" case).
    assert abs(r["accuracy"] - 0.5) < 0.1
    assert abs(r["auc"] - 0.5) < 0.12
    assert r["n_train"] == 300 and r["n_test"] == 300
    assert r["p_value"] > 0.001


def test_c2st_different_sets_are_separated(digits):
    x, _ = digits
    noisy = (x[200:400] + 0.5 * torch.randn(x[200:400].shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    r = c2st(x[:200], noisy, seed=0, max_epochs=3, show_progress=False)
    assert r["accuracy"] > 0.9
    assert r["auc"] > 0.95
    assert r["p_value"] < 1e-6


def test_c2st_is_deterministic_and_balanced(digits):
    x, _ = digits
    a, b = x[:80], -x[80:200]  # unequal sizes: b is subsampled to 80
    r1 = c2st(a, b, seed=3, max_epochs=1, show_progress=False)
    r2 = c2st(a, b, seed=3, max_epochs=1, show_progress=False)
    r1.pop("seconds"), r2.pop("seconds")
    assert r1 == r2
    assert r1["n_train"] + r1["n_test"] == 160


def test_c2st_respects_time_budget(digits):
    x, _ = digits
    r = c2st(x[:200], x[200:400], max_epochs=1000, time_budget_s=0.5, show_progress=False)
    assert r["epochs"] < 1000 and r["seconds"] < 5.0


def test_metrics_reject_images_outside_unit_range(digits):
    x, _ = digits
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        c2st(x[:10] * 255, x[10:20], show_progress=False)
    with pytest.raises(ValueError, match="N x C x H x W"):
        kid(x[0], x[1], show_progress=False)


# --- KID --------------------------------------------------------------------------------

def test_kid_extractor_is_frozen_pooled_lite0():
    f = EfficientNetLite0Pooled(size=64)
    assert f.num_features == 1280
    assert not any(p.requires_grad for p in f.parameters())
    f.train()
    assert not f.training and not any(m.training for m in f.modules())
    assert f(torch.zeros(2, 1, 28, 28)).shape == (2, 1280)
    assert f(torch.zeros(2, 1, 36, 60)).shape == (2, 1280)
    assert f.output_size(36, 60) == (64, 107)
    # uint8 input (torchmetrics' usual convention) reads as the same image
    u8 = torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)
    assert torch.allclose(f(u8), f(torch.ones(1, 1, 28, 28)), atol=1e-5)


def test_kid_near_zero_for_same_distribution_large_for_different(digits):
    x, _ = digits
    default_extractor(128)  # weights load once, outside the timings below
    same = kid(x[:40], x[40:80], subset_size=40, show_progress=False)
    noisy = (x[40:80] + 0.5 * torch.randn(x[40:80].shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    diff = kid(x[:40], noisy, subset_size=40, show_progress=False)
    assert diff["kid_mean"] > 0.2
    # Unbiased MMD^2 scatters around 0 for independent draws of one distribution.
    assert abs(same["kid_mean"]) < 0.05 * diff["kid_mean"]
    assert same["subset_size"] == 40 and same["n_a"] == 40


# --- pupil / gaze label preservation ----------------------------------------------------

H, W = 36, 60


def _eyes(centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Dark antialiased discs (pupils) on a grey background; centres in px, pixel centres at integers."""
    ys = torch.arange(H).float()[:, None]
    xs = torch.arange(W).float()[None, :]
    d = ((xs - centres[:, 0, None, None]) ** 2 + (ys - centres[:, 1, None, None]) ** 2).sqrt()
    cover = (radii[:, None, None] - d + 0.5).clamp(0, 1)  # pixel coverage of the disc edge
    return (0.4 - 1.2 * cover).unsqueeze(1)


def _gaze(centres: torch.Tensor) -> torch.Tensor:
    """A made-up but smooth gaze label: yaw follows x, pitch follows y."""
    return torch.stack([(centres[:, 0] - W / 2) / (W / 2) * 0.5, -(centres[:, 1] - H / 2) / (H / 2) * 0.3], 1)


def _sample(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.stack([torch.rand(n, generator=g) * (W - 16) + 8, torch.rand(n, generator=g) * (H - 14) + 7], 1)
    return c, torch.rand(n, generator=g) * 2 + 3


@pytest.fixture(scope="module")
def pupil_model() -> PupilRegressor:
    g = torch.Generator().manual_seed(0)
    c, r = _sample(400, g)
    return fit_label_regressor(_eyes(c, r), {"pupil": c, "gaze": _gaze(c)}, seed=0, steps=120, width=8,
                               batch_size=32, show_progress=False)


def test_pupil_regressor_locates_pupils(pupil_model):
    c, r = _sample(100, torch.Generator().manual_seed(5))
    err = regressor_error(pupil_model, _eyes(c, r), {"pupil": c, "gaze": _gaze(c)})
    assert err["pupil_error_px_mean"] < 1.0
    assert err["gaze_error_deg_mean"] < 3.0


def test_label_shift_zero_for_identity_refiner(pupil_model):
    c, r = _sample(50, torch.Generator().manual_seed(6))
    x = _eyes(c, r)
    s = label_shift(pupil_model, x, x.clone())
    assert s["pupil_shift_px_mean"] == pytest.approx(0.0, abs=1e-4)
    assert s["gaze_drift_deg_mean"] == pytest.approx(0.0, abs=1e-2)
    assert s["n"] == 50


def test_label_shift_reports_a_known_pupil_shift(pupil_model):
    c, r = _sample(100, torch.Generator().manual_seed(7))
    shift = torch.tensor([1.2, -1.6])  # 2.0 px
    s = label_shift(pupil_model, _eyes(c, r), _eyes(c + shift, r))
    assert s["pupil_shift_px_mean"] == pytest.approx(2.0, abs=0.5)
    true_drift = float(angle_deg(_gaze(c), _gaze(c + shift)).mean())  # ~1.9 deg
    assert s["gaze_drift_deg_mean"] == pytest.approx(true_drift, abs=1.0)


def test_angle_deg_matches_yaw_difference():
    a = torch.tensor([[0.0, 0.0], [0.2, 0.1]])
    b = torch.tensor([[math.radians(10), 0.0], [0.2, 0.1]])
    assert torch.allclose(angle_deg(a, b), torch.tensor([10.0, 0.0]), atol=1e-3)


def test_label_regressor_rejects_missing_labels():
    with pytest.raises(ValueError, match="gaze"):
        fit_label_regressor(torch.zeros(4, 1, H, W), {"pupil": torch.zeros(4, 2)}, steps=1, show_progress=False)


# --- downstream protocol ----------------------------------------------------------------

def test_downstream_real_to_held_out_real_beats_chance(digits):
    x, y = digits
    # Labels as a store hands them out (float32) must work.
    acc = downstream_accuracy(x[:1000], y[:1000].float(), x[4000:4500], y[4000:4500], seed=0, epochs=2,
                              show_progress=False)
    assert acc > 0.7  # chance is 0.1; ~0.9 with these settings


def test_classifier_is_deterministic(digits):
    x, y = digits
    m1 = fit_classifier(x[:128], y[:128], seed=1, epochs=1, num_classes=10, show_progress=False)
    m2 = fit_classifier(x[:128], y[:128], seed=1, epochs=1, num_classes=10, show_progress=False)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)
    assert classifier_accuracy(m1, x[128:192], y[128:192]) == classifier_accuracy(m2, x[128:192], y[128:192])
