"""Real MNIST for the ``digits`` benchmark: one fixed split into two stores.

SimGAN learns from *unlabeled* real images (paper Sec. 2) and is judged by training a
task model on refined synthetic images and testing it on *labeled, held-out* real images
(Sec. 3.2, Tables 2/3). With one pool of 5,000 real digits
(``data/mnist/mnist_train_5k.npz``, see its README for source and licence) both roles
come from the same file, so the split must be fixed and disjoint:

- ``unlabeled``: the real stream for the discriminator. Its store holds images only, so
  nothing downstream can use its labels by accident.
- ``test``: labeled (``digit``), stratified (the same number of each class), never
  shown to the refiner or the discriminator.

The split depends only on the file's labels, ``n_test`` and ``seed``; each store records
the indices into the ``.npz`` it took, in store order (attribute ``source_indices``), so
the split can be audited. Stores are written in a shuffled order, so any prefix of one
is a fair sample of all classes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from simgan.data.store import check_store, write_store
from simgan.errors import ConfigError, DataError

SPLIT_VERSION = 1
SPLITS = ("unlabeled", "test")


def split_indices(labels: np.ndarray, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of ``range(len(labels))`` into (unlabeled, test) indices.

    Each class contributes to the test split in proportion to its size (largest
    remainders get the leftover places), so a balanced file gives a balanced test split.
    Both index arrays come in a seeded random order: the shipped file is sorted by class,
    and a store written in file order would make every prefix of it a single digit.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 < n_test < n:
        raise ConfigError(f"mnist: n_test must be between 1 and {n - 1}, got {n_test}")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_test / n
    take = np.floor(quota).astype(int)
    leftover = n_test - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    rng = np.random.default_rng(seed)
    test = []
    for c, k in zip(classes, take):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[:k])
    test_idx = np.concatenate(test)
    unlabeled_idx = np.setdiff1d(np.arange(n), test_idx)
    return rng.permutation(unlabeled_idx), rng.permutation(test_idx)


def file_digest(path: Path) -> str:
    """A short hash of a file's content, for cache keys that a replaced file never matches."""
    return hashlib.sha1(path.read_bytes()).hexdigest()[:10]


def _store_paths(npz: Path, cache_dir: Path, n_test: int, seed: int) -> dict[str, Path]:
    # The key covers the file's content, so a replaced .npz never reuses an old split.
    key = json.dumps({"v": SPLIT_VERSION, "file": file_digest(npz), "n_test": n_test, "seed": seed})
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return {split: cache_dir / f"{npz.stem}_{split}_t{n_test}_s{seed}_{digest}.h5" for split in SPLITS}


def _load(npz: Path) -> tuple[np.ndarray, np.ndarray]:
    if not npz.is_file():
        raise DataError(f"{npz}: file not found (expected an .npz with arrays 'images' and 'labels')")
    with np.load(npz) as arrays:
        missing = {"images", "labels"} - set(arrays.files)
        if missing:
            raise DataError(f"{npz}: missing array(s) {sorted(missing)} (has {sorted(arrays.files)})")
        images, labels = arrays["images"], arrays["labels"]
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or len(images) != len(labels):
        raise DataError(f"{npz}: expected images N x H x W and labels (N,), got {images.shape} and {labels.shape}")
    return images, labels.astype(np.int64)


def mnist_split_stores(npz_path: str | Path, cache_dir: str | Path, n_test: int = 2000,
                       seed: int = 0) -> tuple[Path, Path]:
    """Writes (once) and returns ``(real_unlabeled_store_path, real_test_store_path)``.

    Stores already in ``cache_dir`` for the same file content, ``n_test`` and ``seed``
    are checked and reused.
    """
    npz, cache_dir = Path(npz_path), Path(cache_dir)
    if not npz.is_file():
        raise DataError(f"{npz}: file not found (expected an .npz with arrays 'images' and 'labels')")
    paths = _store_paths(npz, cache_dir, n_test, seed)
    if all(p.exists() for p in paths.values()):
        for p in paths.values():
            check_store(p)
        return paths["unlabeled"], paths["test"]
    images, labels = _load(npz)
    unlabeled_idx, test_idx = split_indices(labels, n_test, seed)
    common = {"source_format": "npz", "source_path": str(npz), "converter_version": str(SPLIT_VERSION),
              "split_seed": seed, "n_test": n_test,
              "licence": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0"}
    write_store(paths["unlabeled"], images[unlabeled_idx], overwrite=True, attrs={
        **common, "split": "unlabeled", "source_indices": unlabeled_idx,
        "description": "real MNIST digits, unlabeled stream for the refiner/discriminator"})
    write_store(paths["test"], images[test_idx], {"digit": labels[test_idx]}, overwrite=True, attrs={
        **common, "split": "test", "source_indices": test_idx,
        "description": "real MNIST digits, labeled held-out test split (never seen in training)"})
    return paths["unlabeled"], paths["test"]


class MnistSplit:
    """A source (see :mod:`simgan.data.sources`) for one side of the fixed MNIST split.

    ``split="unlabeled"``: images only, the refiner's real stream.
    ``split="test"``: images + ``digit`` labels, for the downstream evaluation.
    """

    def __init__(self, npz: str, cache_dir: str, split: str = "unlabeled", n_test: int = 2000,
                 seed: int = 0, description: str = "", n: int | None = None):
        if split not in SPLITS:
            raise ConfigError(f"data: MNIST split must be one of {SPLITS}, got split={split!r}")
        self.npz = Path(npz)
        self.cache_dir = Path(cache_dir)
        self.split = split
        self.n_test = int(n_test)
        self.seed = int(seed)
        self.description = description
        # like every source: use the first n images (stores are written shuffled, so a
        # prefix is a fair sample of all classes)
        self.n = int(n) if n else None
        if not self.npz.is_file():
            raise DataError(f"{self.npz}: file not found (expected an .npz with arrays 'images' and 'labels')")
        self.path = _store_paths(self.npz, self.cache_dir, self.n_test, self.seed)[split]

    def prepare(self) -> Path:
        unlabeled, test = mnist_split_stores(self.npz, self.cache_dir, self.n_test, self.seed)
        return unlabeled if self.split == "unlabeled" else test

    def side(self, split: str) -> "MnistSplit":
        """``split``'s side of this same split (same file, ``n_test``, ``seed``), its store written.

        From the ``unlabeled`` real stream, ``side("test")`` is the labeled store the
        downstream protocol (paper Sec. 3.2) tests on, disjoint from every image D saw.
        """
        other = MnistSplit(str(self.npz), str(self.cache_dir), split=split, n_test=self.n_test, seed=self.seed)
        other.prepare()
        return other

    def labels_of(self, store_index: np.ndarray) -> np.ndarray:
        """The ``digit`` labels of this store's samples ``store_index``, looked up in the ``.npz``.

        The ``unlabeled`` store holds no labels, so nothing in training can use them; the
        downstream reference model (Sec. 3.2, trained on real labeled images) reads them
        here, through the store's ``source_indices``.
        """
        attrs = check_store(self.path)["attrs"]
        if "source_indices" not in attrs:
            raise DataError(f"{self.path}: no 'source_indices' attribute: cannot find the labels of its images")
        source = np.asarray(attrs["source_indices"])
        with np.load(self.npz) as arrays:
            labels = arrays["labels"]
        return labels[source[np.asarray(store_index)]].astype(np.int64)

    def describe(self) -> str:
        what = self.description or f"real MNIST, {self.split} split"
        return f"{what} (from {self.npz}, n_test={self.n_test}, seed={self.seed}; cached at {self.path})"
