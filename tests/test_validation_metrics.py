"""The validation-time realism callback: its keys, its direction, and ModelCheckpoint on it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

from simgan.callbacks.validation_metrics import ValidationRealism
from simgan.data.simulators.digits import render_digits
from simgan.errors import ConfigError
from simgan.metrics.downstream import fit_classifier
from simgan.training import train


class _Module(nn.Module):
    """What the callback reads from a LightningModule: ``refiner`` and ``device``."""

    def __init__(self, refiner):
        super().__init__()
        self.refiner = refiner
        self.device = torch.device("cpu")


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.fixture(scope="module")
def digits():
    images, labels = render_digits(768, seed=3)
    return torch.from_numpy(images).float() / 127.5 - 1.0, torch.from_numpy(labels["digit"])


@pytest.fixture(scope="module")
def digit_callback(digits):
    x, y = digits
    cb = ValidationRealism(n_images=256, c2st={"max_epochs": 4, "time_budget_s": 20.0}, seed=0)
    # Synthetic and "real" from one distribution, disjoint images: an identity refiner
    # leaves nothing to tell apart.
    cb.synthetic, cb.real = x[:256], x[256:512]
    cb.label_kind, cb.baseline = "class", 0.5
    cb.label_model = fit_classifier(x[512:], y[512:], epochs=3, show_progress=False)
    return cb


def test_identity_on_one_distribution_scores_near_chance_and_no_flips(digit_callback):
    values = digit_callback.measure(_Module(_Lambda(lambda x: x)))
    assert set(values) == {"val/c2st_refined", "val/c2st_synthetic", "val/label_flip", "val/realism_gap",
                           "val/realism_seconds"}
    assert abs(values["val/c2st_refined"] - 0.5) < 0.12  # 256 held-out images: sd ~0.03
    assert values["val/label_flip"] == 0.0
    assert values["val/realism_gap"] < 0.25


def test_clearly_different_refiner_scores_far_from_chance(digit_callback):
    same = digit_callback.measure(_Module(_Lambda(lambda x: x)))
    inverted = digit_callback.measure(_Module(_Lambda(lambda x: -x)))  # black on white: easy to spot
    assert inverted["val/c2st_refined"] > 0.9
    assert inverted["val/label_flip"] > 0.3  # and the digits no longer read as themselves
    assert inverted["val/realism_gap"] > same["val/realism_gap"] + 0.8


def test_pupil_shift_follows_a_known_translation():
    """A stub estimator (brightest pixel = pupil): shifting the image 3 right, 4 down moves it 5 px."""
    gen = torch.Generator().manual_seed(0)
    x = -torch.ones(64, 1, 36, 60)
    ys, xs = torch.randint(4, 28, (64,), generator=gen), torch.randint(4, 50, (64,), generator=gen)
    x[torch.arange(64), 0, ys, xs] = 1.0

    class Brightest(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(1))  # predict() reads the device off a parameter

        def forward(self, img):
            flat = img.flatten(1).argmax(1)
            px = torch.stack([(flat % 60).float(), (flat // 60).float()], 1)
            return torch.cat([px, torch.zeros(len(img), 2)], 1)  # gaze: always straight ahead

    cb = ValidationRealism(n_images=64, c2st={"max_epochs": 1, "time_budget_s": 5.0}, pupil_weight=0.1)
    cb.synthetic, cb.real = x, x.flip(0)
    cb.label_kind, cb.label_model, cb.baseline = "eyes", Brightest(), 1.0
    still = cb.measure(_Module(_Lambda(lambda t: t)))
    moved = cb.measure(_Module(_Lambda(lambda t: torch.roll(t, shifts=(4, 3), dims=(2, 3)))))
    assert still["val/pupil_shift_px"] == 0.0 and still["val/gaze_drift_deg"] == 0.0
    assert moved["val/pupil_shift_px"] == pytest.approx(5.0)
    # the label term enters realism_gap with its weight
    gap_c2st = 2 * abs(moved["val/c2st_refined"] - 0.5)
    assert moved["val/realism_gap"] == pytest.approx(gap_c2st + 0.5)


def test_settings_use_the_evaluation_names_and_refuse_unknown_keys():
    cb = ValidationRealism(c2st={"max_epochs": 2}, labels={"fit_images": 10, "class_label": None})
    assert cb.c2st_kw["max_epochs"] == 2 and cb.c2st_kw["time_budget_s"] == 5.0  # the rest: defaults
    assert cb.labels["fit_images"] == 10 and cb.labels["steps"] == 150 and cb.class_label is None
    with pytest.raises(ConfigError, match="c2st_epochs"):
        ValidationRealism(c2st={"c2st_epochs": 2})


def test_training_logs_the_keys_and_keeps_the_best_refiner(compose_train, tmp_path):
    cfg = compose_train("experiment=digits", "debug=default", "callbacks=realism", "logger=csv",
                        "callbacks.realism.n_images=64", "callbacks.realism.c2st.max_epochs=2",
                        "callbacks.realism.labels.fit_images=128", "callbacks.realism.labels.epochs=1")
    metrics = train(cfg)
    for key in ("val/c2st_refined", "val/c2st_synthetic", "val/label_flip", "val/realism_gap"):
        assert key in metrics, key
    assert 0.0 <= metrics["val/c2st_refined"] <= 1.0
    rows = [r for r in csv.DictReader(open(tmp_path / "csv" / "metrics.csv")) if r.get("val/realism_gap")]
    gaps = [float(r["val/realism_gap"]) for r in rows]
    assert len(gaps) == 2  # debug: validation every 5 of 10 steps, none during the sanity check
    best = sorted((tmp_path / "checkpoints").glob("best-step*.ckpt"))
    assert len(best) == 1 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    score = torch.load(best[0], map_location="cpu", weights_only=False)["callbacks"]
    best_scores = [v["best_model_score"] for k, v in score.items() if "realism_gap" in k]
    assert best_scores and float(best_scores[0]) == pytest.approx(min(gaps))
    assert np.isfinite(gaps).all()
