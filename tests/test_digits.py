"""The digits benchmark data: rendered synthetic digits and the fixed real MNIST split."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from simgan.data.mnist import MnistSplit, mnist_split_stores, split_indices
from simgan.data.simulators import digits as digits_sim
from simgan.data.simulators.digits import render_digits
from simgan.data.sources import RenderedStore
from simgan.data.store import StoreDataset, check_store
from simgan.errors import ConfigError, DataError
from simgan.metrics.downstream import classifier_accuracy, fit_classifier

torch.set_num_threads(1)

MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist" / "mnist_train_5k.npz"


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, np.ndarray]:
    images, labels = render_digits(600, seed=0)
    return images, labels["digit"]


def _to_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 127.5 - 1.0


# --- rendered digits --------------------------------------------------------------------

def test_shapes_dtypes_and_mnist_look(rendered):
    images, labels = rendered
    assert images.shape == (600, 1, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (600,) and labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(10))
    assert (images.reshape(600, -1).max(1) == 255).all()  # strokes saturate, like MNIST
    border = np.concatenate([images[:, 0, :2].reshape(600, -1), images[:, 0, -2:].reshape(600, -1),
                             images[:, 0, :, :2].reshape(600, -1), images[:, 0, :, -2:].reshape(600, -1)], 1)
    assert border.mean() < 2.0  # black background, ink in the middle (white on black)


def test_centre_of_mass_is_centred_and_ink_fits_mnist_box(rendered):
    images, _ = rendered
    ink = images[:, 0].astype(np.float64)
    ys, xs = np.indices((28, 28))
    mass = ink.sum((1, 2))
    com_y, com_x = (ink * ys).sum((1, 2)) / mass, (ink * xs).sum((1, 2)) / mass
    # MNIST centres the centre of mass; the renderer adds up to 1 px of jitter (+ rounding).
    assert np.abs(com_y - 13.5).max() < 1.6 and np.abs(com_x - 13.5).max() < 1.6
    rows, cols = (ink > 0).any(2), (ink > 0).any(1)
    extent = np.maximum(rows.sum(1), cols.sum(1))
    assert extent.max() <= 24 and np.median(extent) >= 17  # ~20 px box like MNIST


def test_deterministic_and_prefix_stable():
    a, la = render_digits(30, seed=3)
    b, lb = render_digits(30, seed=3)
    c, lc = render_digits(12, seed=3)
    d, _ = render_digits(30, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la["digit"], lb["digit"])
    assert np.array_equal(a[:12], c) and np.array_equal(la["digit"][:12], lc["digit"])
    assert not np.array_equal(a, d)
    assert digits_sim.RENDER_VERSION == 1


def test_other_sizes_keep_the_layout():
    images, labels = render_digits(5, height=32, width=40, seed=1)
    assert images.shape == (5, 1, 32, 40) and labels["digit"].shape == (5,)
    assert render_digits(0)[0].shape == (0, 1, 28, 28)


def test_fonts_ship_with_matplotlib():
    for name in digits_sim.FONT_FILES:
        assert digits_sim._font(name).getbbox("0")[2] > 0  # loads, and has a digit glyph


def test_fast_enough():
    start = time.process_time()
    render_digits(1000, seed=7)
    # The budget is 10k images in < 30 s on one core; CPU time, so other load doesn't count.
    assert time.process_time() - start < 3.0


def test_labels_are_right_a_real_mnist_classifier_reads_rendered_digits(rendered):
    with np.load(MNIST) as f:
        x, y = f["images"], f["labels"]
    order = np.random.default_rng(0).permutation(len(x))[:1500]
    model = fit_classifier(_to_unit(x[order][:, None]), y[order], seed=0, epochs=2, show_progress=False)
    images, labels = rendered
    acc = classifier_accuracy(model, _to_unit(images[:500]), labels[:500])
    # Chance is 0.1; a 5x-chance score needs the labels to match what is drawn (a shuffled
    # or off-by-one labeling scores ~0.1). Fonts are not handwriting: ~0.5 here, ~0.7 with
    # 3,000 training digits and 3 epochs.
    assert acc > 0.3


def test_rendered_store_round_trip(tmp_path):
    src = RenderedStore("simgan.data.simulators.digits.render_digits", n=20, height=28, width=28, seed=0,
                        cache_dir=str(tmp_path))
    path = src.prepare()
    ds = StoreDataset(path, labels=["digit"])
    images, labels = render_digits(20, seed=0)
    sample = ds[7]
    assert sample["image"].shape == (1, 28, 28)
    assert torch.allclose(sample["image"], _to_unit(images[7]), atol=1e-6)
    assert sample["digit"].dtype == torch.float32 and int(sample["digit"]) == labels["digit"][7]


# --- the real MNIST split ---------------------------------------------------------------

@pytest.fixture(scope="module")
def split(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mnist")
    return cache, mnist_split_stores(MNIST, cache, n_test=2000, seed=0)


def test_split_is_disjoint_complete_and_stratified(split):
    _, (unlabeled, test) = split
    with np.load(MNIST) as f:
        images, labels = f["images"], f["labels"]
    with h5py.File(unlabeled, "r") as u, h5py.File(test, "r") as t:
        iu, it = u.attrs["source_indices"], t.attrs["source_indices"]
        assert len(u["labels"]) == 0  # the refiner's real stream carries no labels
        assert u["images"].shape == (3000, 1, 28, 28) and t["images"].shape == (2000, 1, 28, 28)
        assert np.array_equal(u["images"][:, 0], images[iu])
        assert np.array_equal(t["images"][:, 0], images[it])
        assert np.array_equal(t["labels"]["digit"][:], labels[it])
    assert len(np.intersect1d(iu, it)) == 0
    assert np.array_equal(np.sort(np.concatenate([iu, it])), np.arange(5000))
    assert np.array_equal(np.bincount(labels[it], minlength=10), np.full(10, 200))
    # Stores are shuffled: a prefix is not one class (the .npz is sorted by class).
    assert len(np.unique(labels[iu[:100]])) == 10 and len(np.unique(labels[it[:100]])) == 10


def test_split_is_fixed_by_seed():
    labels = np.repeat(np.arange(10), 50)
    a = split_indices(labels, 100, seed=0)
    b = split_indices(labels, 100, seed=0)
    c = split_indices(labels, 100, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))
    assert np.array_equal(np.bincount(labels[a[1]]), np.full(10, 10))
    with pytest.raises(ConfigError, match="n_test"):
        split_indices(labels, 500)


def test_split_stores_are_reused(split):
    cache, (unlabeled, test) = split
    mtime = unlabeled.stat().st_mtime_ns
    assert mnist_split_stores(MNIST, cache, n_test=2000, seed=0) == (unlabeled, test)
    assert unlabeled.stat().st_mtime_ns == mtime


def test_mnist_split_source(split):
    cache, (unlabeled, test) = split
    u = MnistSplit(str(MNIST), str(cache), split="unlabeled")
    t = MnistSplit(str(MNIST), str(cache), split="test")
    assert u.path == unlabeled and u.prepare() == unlabeled
    assert t.path == test and t.prepare() == test
    assert check_store(test)["labels"] == {"digit": ()}
    assert "test" in t.describe() and str(MNIST) in t.describe()
    sample = StoreDataset(test, labels=["digit"])[0]
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1
    with pytest.raises(ConfigError, match="split"):
        MnistSplit(str(MNIST), str(cache), split="train")
    with pytest.raises(DataError, match="not found"):
        MnistSplit(str(cache / "missing.npz"), str(cache))
