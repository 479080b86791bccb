"""Real USPS digits as the labeled *source* stream of the ``usps2mnist`` benchmark.

The paper's downstream protocol (Sec. 3.2, Tables 2/3) trains a task model on labeled
source images, raw and refined, and tests it on held-out real images of the target
domain. On ``digits`` the source is font-rendered, and the gap to MNIST is mostly the
shapes people write, which a local refiner cannot change. USPS (Hull, TPAMI 1994) is
handwriting too, so what separates it from MNIST is largely appearance: scanner,
stroke width, grey levels, the 16 x 16 frame. That is the kind of gap SimGAN's refiner
is built to close.

A 16 x 16 USPS digit fills its frame; a MNIST digit sits, antialiased, in a 20 x 20 box
centred by its centre of mass in 28 x 28 (LeCun et al. 1998). A plain 16 -> 28 resize
would leave a *geometric* gap the classifier has to bridge and the refiner should not,
so each USPS digit is normalized as MNIST itself was made:

1. bounding box of the ink above ``threshold`` (drops faint scanner specks);
2. that box resized, aspect ratio kept, so its longer side is ``box`` (20) px, with
   PIL's bilinear filter (antialiased when it shrinks, smooth when it enlarges);
3. placed in the frame so that its intensity centre of mass sits at the frame centre,
   by an integer shift as MNIST did (:func:`simgan.data.simulators.digits._place`, the
   same placement the rendered digits use).

The store records the indices into the ``.npz`` it took (``source_indices``, store
order) and is written in a seeded shuffled order, so any prefix is a fair sample of all
classes (the file is not ordered, but ``n`` should never depend on that).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from simgan.data.mnist import file_digest
from simgan.data.simulators.digits import _place
from simgan.data.store import check_store, write_store
from simgan.errors import ConfigError, DataError

# Bump whenever normalize_digits' output changes: the cache key includes it.
NORMALIZE_VERSION = 1
SPLITS = {"train": 0, "test": 1, "all": None}
# MNIST's measured centre of mass is (14.0, 14.0) in pixel-index coordinates (each one
# within [13.5, 14.5]); _place aims at (H - 1) / 2 = 13.5, so half a pixel more.
_MNIST_CENTRE_OFFSET = (0.5, 0.5)


def normalize_digit(image: np.ndarray, size: int = 28, box: int = 20, threshold: int = 32) -> np.ndarray:
    """One uint8 H x W digit (white on black) -> uint8 ``size`` x ``size``, MNIST-normalized."""
    ink = np.asarray(image, dtype=np.float32)
    rows, cols = np.flatnonzero((ink > threshold).any(1)), np.flatnonzero((ink > threshold).any(0))
    if not len(rows):  # a blank scan: nothing to centre
        return np.zeros((size, size), np.uint8)
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    k = box / max(h, w)
    out_w, out_h = max(1, round(w * k)), max(1, round(h * k))
    resized = Image.fromarray(crop, mode="F").resize((out_w, out_h), Image.Resampling.BILINEAR)
    glyph = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)
    frame = _place(glyph, size, size, _MNIST_CENTRE_OFFSET)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def normalize_digits(images: np.ndarray, size: int = 28, box: int = 20, threshold: int = 32) -> np.ndarray:
    """N x H x W (or N x 1 x H x W) uint8 digits -> N x 1 x ``size`` x ``size`` uint8."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    return np.stack([normalize_digit(x, size, box, threshold) for x in images])[:, None]


def _load(npz: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not npz.is_file():
        raise DataError(f"{npz}: file not found (expected an .npz with arrays 'images', 'labels', 'split')")
    with np.load(npz) as arrays:
        missing = {"images", "labels", "split"} - set(arrays.files)
        if missing:
            raise DataError(f"{npz}: missing array(s) {sorted(missing)} (has {sorted(arrays.files)})")
        images, labels, split = arrays["images"], arrays["labels"], arrays["split"]
    if images.ndim != 3 or not len(images) == len(labels) == len(split):
        raise DataError(f"{npz}: expected images N x H x W, labels (N,) and split (N,), got "
                        f"{images.shape}, {labels.shape}, {split.shape}")
    return images, labels.astype(np.int64), split


class UspsDigits:
    """A source (see :mod:`simgan.data.sources`): one split of USPS, MNIST-normalized, labeled ``digit``.

    ``split``: ``train`` (7,291 images in the shipped file), ``test`` (2,007; a held-out
    source-domain check) or ``all``. ``n``: use the store's first ``n`` images.
    """

    def __init__(self, npz: str, cache_dir: str, split: str = "train", size: int = 28, box: int = 20,
                 threshold: int = 32, seed: int = 0, description: str = "", n: int | None = None):
        if split not in SPLITS:
            raise ConfigError(f"data: USPS split must be one of {sorted(SPLITS)}, got split={split!r}")
        if not 0 < box <= size:
            raise ConfigError(f"data: USPS box must be in 1..size={size}, got box={box}")
        self.npz = Path(npz)
        self.split = split
        self.args = {"size": int(size), "box": int(box), "threshold": int(threshold), "seed": int(seed)}
        self.description = description
        self.n = int(n) if n else None
        if not self.npz.is_file():
            raise DataError(f"{self.npz}: file not found (expected an .npz with arrays 'images', 'labels', 'split')")
        # The key covers the file's content and the normalization, so no stale store is reused.
        key = json.dumps({"v": NORMALIZE_VERSION, "file": file_digest(self.npz), "split": split, **self.args},
                         sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        self.path = Path(cache_dir) / f"{self.npz.stem}_{split}_{size}x{size}_{digest}.h5"

    def prepare(self) -> Path:
        if self.path.exists():
            check_store(self.path, ["digit"])
            return self.path
        images, labels, split = _load(self.npz)
        wanted = SPLITS[self.split]
        idx = np.arange(len(images)) if wanted is None else np.flatnonzero(split == wanted)
        if not len(idx):
            raise DataError(f"{self.npz}: no images with split={wanted} ('{self.split}')")
        idx = np.random.default_rng(self.args["seed"]).permutation(idx)
        a = self.args
        normalized = normalize_digits(images[idx], a["size"], a["box"], a["threshold"])
        write_store(self.path, normalized, {"digit": labels[idx]}, overwrite=True, attrs={
            "source_format": "npz", "source_path": str(self.npz), "converter_version": str(NORMALIZE_VERSION),
            "split": self.split, "source_indices": idx, "normalize_args": json.dumps(a),
            "licence": "USPS (Hull, TPAMI 1994), for research use",
            "description": self.description or "USPS digits, MNIST-normalized"})
        return self.path

    def describe(self) -> str:
        what = self.description or f"USPS digits, {self.split} split"
        return f"{what} (from {self.npz}, MNIST-normalized to {self.args['size']} px; cached at {self.path})"
