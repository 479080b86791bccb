"""USPS as the labeled source of usps2mnist: MNIST's normalization, the cached store, the config."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from simgan.data.store import StoreDataset, check_store
from simgan.data.usps import UspsDigits, normalize_digit, normalize_digits
from simgan.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
USPS = ROOT / "data" / "usps" / "usps_16x16.npz"
MNIST = ROOT / "data" / "mnist" / "mnist_train_5k.npz"


def _geometry(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: ink bounding box height/width (nonzero pixels) and intensity centre of mass."""
    ink = images.reshape(len(images), 28, 28).astype(np.float64)
    rows, cols = (ink > 0).any(2), (ink > 0).any(1)
    height = rows.shape[1] - rows.argmax(1) - rows[:, ::-1].argmax(1)
    width = cols.shape[1] - cols.argmax(1) - cols[:, ::-1].argmax(1)
    ys, xs = np.indices((28, 28))
    mass = ink.sum((1, 2))
    return {"height": height, "width": width, "long": np.maximum(height, width),
            "com_y": (ink * ys).sum((1, 2)) / mass, "com_x": (ink * xs).sum((1, 2)) / mass}


def _check_mnist_geometry(g: dict[str, np.ndarray]) -> None:
    # MNIST (LeCun et al.): ink fitted into a 20x20 box, centre of mass at the centre of 28x28.
    assert g["height"].max() <= 20 and g["width"].max() <= 20
    assert np.median(g["long"]) == 20 and np.mean(g["long"] >= 18) > 0.97
    assert np.abs(g["com_y"] - 14).max() <= 1.0 and np.abs(g["com_x"] - 14).max() <= 1.0


@pytest.fixture(scope="module")
def usps() -> dict[str, np.ndarray]:
    with np.load(USPS) as f:
        return {k: f[k] for k in f.files}


def test_shipped_file_is_what_the_readme_says(usps):
    assert usps["images"].shape == (9298, 16, 16) and usps["images"].dtype == np.uint8
    assert set(np.unique(usps["labels"])) == set(range(10))
    assert (usps["split"] == 0).sum() == 7291 and (usps["split"] == 1).sum() == 2007


def test_normalized_usps_has_mnist_geometry(usps):
    normalized = normalize_digits(usps["images"][:1000])
    assert normalized.shape == (1000, 1, 28, 28) and normalized.dtype == np.uint8
    _check_mnist_geometry(_geometry(normalized))


def test_shipped_mnist_has_the_same_geometry():
    """The bounds above are MNIST's own: the shipped digits pass them too."""
    with np.load(MNIST) as f:
        _check_mnist_geometry(_geometry(f["images"]))


def test_aspect_ratio_is_kept_and_specks_do_not_count():
    digit = np.zeros((16, 16), np.uint8)
    digit[2:14, 6:10] = 255  # a 12 x 4 bar: becomes 20 x ~7
    digit[0, 0] = 20  # a faint speck, below the threshold
    out = normalize_digit(digit)
    g = _geometry(out[None])
    assert g["height"][0] == 20 and 6 <= g["width"][0] <= 8
    assert normalize_digit(np.zeros((16, 16), np.uint8)).max() == 0  # blank stays blank


def test_store_is_labeled_shuffled_and_traceable(usps, tmp_path):
    source = UspsDigits(str(USPS), str(tmp_path), split="test")
    path = source.prepare()
    meta = check_store(path, ["digit"])
    assert meta["count"] == 2007 and meta["shape"] == (1, 28, 28)
    with h5py.File(path) as f:
        idx = np.asarray(f.attrs["source_indices"])
        stored = f["labels"]["digit"][:]
        images = f["images"][:5, 0]
    assert (usps["split"][idx] == 1).all() and len(set(idx)) == 2007
    assert (stored == usps["labels"][idx]).all()
    assert not (np.diff(idx) > 0).all()  # written shuffled: a prefix is a fair sample
    assert (images == normalize_digits(usps["images"][idx[:5]])[:, 0]).all()
    ds = StoreDataset(path, ["digit"])
    assert -1.0 <= float(ds[0]["image"].min()) and float(ds[0]["image"].max()) <= 1.0
    mtime = path.stat().st_mtime_ns
    assert UspsDigits(str(USPS), str(tmp_path), split="test").prepare().stat().st_mtime_ns == mtime  # cached


def test_train_and_test_splits_are_disjoint(tmp_path):
    with h5py.File(UspsDigits(str(USPS), str(tmp_path), split="train").prepare()) as f:
        train = set(f.attrs["source_indices"])
    with h5py.File(UspsDigits(str(USPS), str(tmp_path), split="test").prepare()) as f:
        test = set(f.attrs["source_indices"])
    assert len(train) == 7291 and not train & test


def test_bad_input_names_the_setting_or_file(tmp_path):
    with pytest.raises(ConfigError, match="split"):
        UspsDigits(str(USPS), str(tmp_path), split="val")
    with pytest.raises(DataError, match="nope.npz"):
        UspsDigits(str(tmp_path / "nope.npz"), str(tmp_path))
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((3, 16, 16), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="split"):
        UspsDigits(str(bad), str(tmp_path)).prepare()


def test_experiment_composes_with_the_usps_train_split_and_mnist_test(compose_train):
    cfg = compose_train("experiment=usps2mnist")
    assert cfg.data.synthetic._target_ == "simgan.data.usps.UspsDigits" and cfg.data.synthetic.split == "train"
    assert cfg.data.real._target_ == "simgan.data.mnist.MnistSplit" and cfg.data.real.split == "unlabeled"
    assert list(cfg.data.labels) == ["digit"] and (cfg.data.height, cfg.data.width) == (28, 28)
