"""The downstream protocol's task models and error measures, on constructed cases and tiny stores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan.data.store import write_store
from simgan.errors import ConfigError, DataError
from simgan.evaluation.downstream import headline, real_test_set
from simgan.evaluation.plots import plot_downstream
from simgan.evaluation.report import _downstream_lines
from simgan.metrics.downstream import (angle_error_deg, downstream_scores, fit_regressor, joint_error_px, l2_error,
                                       regression_error, resolve_error, resolve_task)

torch.set_num_threads(1)
MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist" / "mnist_train_5k.npz"
NOT_MNIST = None  # a real source that is not the MNIST split


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 16x16 images of one bright 3x3 square; label = its centre (x, y) in px."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(2, 14, size=(n, 2))
    images = np.zeros((n, 1, 16, 16), np.uint8)
    for i, (x, y) in enumerate(xy):
        images[i, 0, y - 1:y + 2, x - 1:x + 2] = 255
    return images, xy.astype(np.float32)


def _unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 127.5 - 1.0


# --- error measures ---------------------------------------------------------------------

def test_angle_of_identical_gaze_is_0_and_of_orthogonal_gaze_is_90():
    gaze = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-1.0, 0.5]])
    assert angle_error_deg(gaze, gaze).abs().max() < 1e-3
    ahead = torch.zeros(2, 2)
    orthogonal = torch.tensor([[math.pi / 2, 0.0], [0.0, math.pi / 2]])  # to the side; straight up
    assert angle_error_deg(ahead, orthogonal) == pytest.approx(torch.tensor([90.0, 90.0]), abs=1e-3)
    with pytest.raises(ConfigError, match="angle_deg"):
        angle_error_deg(torch.zeros(2, 3), torch.zeros(2, 3))


def test_joint_error_is_per_joint_for_flat_and_shaped_labels():
    true = torch.zeros(1, 2, 2)
    pred = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])  # errors 5 and 1 px
    assert float(joint_error_px(pred, true)) == pytest.approx(3.0)
    assert float(joint_error_px(pred.reshape(1, 4), true.reshape(1, 4))) == pytest.approx(3.0)
    assert float(joint_error_px(torch.tensor([[[2.0, 3.0, 6.0]]]), torch.zeros(1, 1, 3))) == pytest.approx(7.0)
    assert float(l2_error(torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2))) == pytest.approx(5.0)


def test_auto_task_and_error():
    assert resolve_task("auto", torch.tensor([0, 3, 9])) == "classify"
    assert resolve_task("auto", torch.tensor([0.0, 3.0, 9.0])) == "classify"  # stores give float32
    assert resolve_task("auto", torch.tensor([0.5, 3.0])) == "regress"
    assert resolve_task("auto", torch.zeros(4, 2)) == "regress"
    assert resolve_task("regress", torch.tensor([0, 3, 9])) == "regress"
    with pytest.raises(ConfigError, match="downstream.task=classify"):
        resolve_task("classify", torch.zeros(4, 2))
    assert resolve_error("auto", (2,), "gaze") == "angle_deg"
    assert resolve_error("auto", (21, 3), "joints") == "joint_px"
    assert resolve_error("auto", (2,), "pupil") == "l2"
    with pytest.raises(ConfigError, match="downstream.task"):
        resolve_task("segment", torch.zeros(3))
    with pytest.raises(ConfigError, match="downstream.error"):
        resolve_error("mae", (2,))


# --- the task models --------------------------------------------------------------------

def test_regressor_learns_a_vector_label_and_beats_the_mean():
    train_x, train_y = _blobs(768, seed=0)
    test_x, test_y = _blobs(256, seed=1)
    model = fit_regressor(_unit(train_x), torch.from_numpy(train_y), seed=0, epochs=6, show_progress=False)
    err = regression_error(model, _unit(test_x), torch.from_numpy(test_y), "l2")
    mean = torch.from_numpy(train_y).mean(0, keepdim=True).expand(len(test_y), 2)
    baseline = float(l2_error(mean, torch.from_numpy(test_y)).mean())
    assert err < 0.4 * baseline, (err, baseline)
    # deterministic for a seed
    again = fit_regressor(_unit(train_x), torch.from_numpy(train_y), seed=0, epochs=6, show_progress=False)
    assert regression_error(again, _unit(test_x), torch.from_numpy(test_y), "l2") == pytest.approx(err, rel=1e-5)


def test_classify_run_on_tiny_stores(tmp_path):
    with np.load(MNIST) as f:
        order = np.random.default_rng(0).permutation(len(f["labels"]))[:1300]
        images, labels = f["images"][order][:, None], f["labels"][order]
    train = write_store(tmp_path / "train.h5", images[:1000], {"digit": labels[:1000]})
    test = write_store(tmp_path / "test.h5", images[1000:], {"digit": labels[1000:]})
    x_train, y_train = real_test_set(NOT_MNIST, "digit", str(train), None)
    x_test, y_test = real_test_set(NOT_MNIST, "digit", str(test), 200)
    out = downstream_scores({"real": (x_train, y_train)}, (x_test, y_test), task="auto", label="digit", epochs=2,
                            show_progress=False)
    assert out["task"] == "classify" and out["model"] == "LeNet" and out["n_test"] == 200
    assert out["accuracy_real"] > 0.6  # chance is 0.1
    assert headline(out) == {"accuracy_real": out["accuracy_real"]}


def test_regress_run_reports_error_and_unit(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 16, 16, generator=gen) * 2 - 1
    gaze = (torch.rand(96, 2, generator=gen) - 0.5) * 0.6
    train_sets = {"synthetic": (x[:64], gaze[:64]), "refined": (x[:64], gaze[:64])}
    out = downstream_scores(train_sets, (x[64:], gaze[64:]), label="gaze", epochs=1, show_progress=False)
    assert out["task"] == "regress" and out["error_measure"] == "angle_deg" and out["error_unit"] == "deg"
    assert 0.0 <= out["error_synthetic"] <= 180.0
    assert out["error_synthetic"] == pytest.approx(out["error_refined"])  # same data, same seed
    assert set(headline(out)) == {"error_synthetic", "error_refined"}
    lines = "\n".join(_downstream_lines(out))
    assert "CNN regressor" in lines and "angle_deg error, deg" in lines and "(c)" not in lines
    assert plot_downstream(out, tmp_path / "downstream.png").stat().st_size > 0


def test_test_store_without_the_label_or_missing_is_a_data_error(tmp_path):
    store = write_store(tmp_path / "unlabeled.h5", np.zeros((4, 1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="gaze"):
        real_test_set(NOT_MNIST, "gaze", str(store), None)
    with pytest.raises(DataError, match="downstream.test_store"):
        real_test_set(NOT_MNIST, "gaze", str(tmp_path / "nope.h5"), None)
    with pytest.raises(ConfigError, match="downstream.test_store"):
        real_test_set(NOT_MNIST, "gaze", None, None)
