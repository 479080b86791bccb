"""A plain folder of PNG/JPG images (+ optional ``labels.csv``) -> store.

The catch-all for "a pile of real images" (SimGAN's unlabeled real domain) or any
simulator that writes image files. Images are read in name order (numbers compared as
numbers). The first image sets the layout: 8-bit grayscale -> 1 channel uint8, 16-bit
grayscale (e.g. depth PNGs) -> 1 channel uint16, anything else -> 3 channels RGB uint8
(alpha dropped); ``--grayscale`` forces 1 channel. Without ``--size`` every image must
have the first one's size; with it, each is resampled (Lanczos).

``labels.csv`` (or ``--labels PATH``): a header row with a ``filename`` column and numeric
columns; each row labels the image of that file name. A column ``name`` becomes the
scalar label ``name``; columns ``name.0``, ``name.1``, ... become one vector label
``name``. Every image needs exactly one row and every row an image.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from array import array
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from simgan.data.convert._common import Batch, batched, open_image, require_dir, require_file, write_batches
from simgan.errors import DataError

NAME = "folder"
HELP = "folder of PNG/JPG images, optional labels.csv (filename + numeric columns)"
BATCH = 256
_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grayscale", action="store_true", help="convert every image to one channel")
    parser.add_argument("--labels", dest="labels_csv", default=None,
                        help="labels CSV (default: SRC/labels.csv when it exists)")


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def read_labels(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Label arrays aligned with ``names`` (the image file names, in store order).

    Read row by row into one float64 buffer (a label row costs its numbers and a dict
    entry, not a list of strings): a CSV for a million images stays in ~100 MB.
    """
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            if "filename" not in header:
                raise DataError(f"{path}: the header needs a 'filename' column")
            key = header.index("filename")
            columns = [i for i in range(len(header)) if i != key]
            row_of: dict[str, int] = {}
            flat = array("d")
            for line, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}: line {line} has {len(row)} fields, the header {len(header)}")
                try:
                    values = [float(row[i]) for i in columns]
                except ValueError:
                    raise DataError(f"{path}: line {line} has a non-numeric label value") from None
                if not all(math.isfinite(v) for v in values):
                    raise DataError(f"{path}: line {line} contains NaN or inf")
                name = row[key].strip()
                if name in row_of:
                    raise DataError(f"{path}: line {line} repeats file name {name!r}")
                row_of[name] = len(row_of)
                flat.extend(values)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read labels CSV ({err})") from None
    missing = [n for n in names if n not in row_of]
    extra = sorted(set(row_of) - set(names))
    if missing or extra:
        raise DataError(f"{path}: {len(row_of)} label rows for {len(names)} images "
                        f"(no row for {missing[:3]}{'...' if len(missing) > 3 else ''}; "
                        f"no image for {extra[:3]}{'...' if len(extra) > 3 else ''})")
    table = np.frombuffer(flat, dtype=np.float64).reshape(len(row_of), len(columns))
    values = table[np.fromiter((row_of[n] for n in names), dtype=np.int64, count=len(names))]
    values = values.astype(np.float32).reshape(len(names), len(columns))
    groups: dict[str, list[tuple[int, int]]] = {}
    for j, i in enumerate(columns):
        match = re.fullmatch(r"(.+)\.(\d+)", header[i])
        name, index = (match[1], int(match[2])) if match else (header[i], -1)
        groups.setdefault(name, []).append((index, j))
    labels = {}
    for name, parts in groups.items():
        if parts == [(-1, parts[0][1])]:
            labels[name] = values[:, parts[0][1]]
        else:
            if sorted(i for i, _ in parts) != list(range(len(parts))):
                raise DataError(f"{path}: columns {name}.k must be numbered 0..{len(parts) - 1}")
            labels[name] = values[:, [j for _, j in sorted(parts)]]
    return labels


def _layout(image: Image.Image, grayscale: bool) -> tuple[str, np.dtype]:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return "I", np.dtype(np.uint16)
    if grayscale or image.mode in ("L", "1", "LA"):
        return "L", np.dtype(np.uint8)
    return "RGB", np.dtype(np.uint8)


def _load(path: Path, mode: str, dtype: np.dtype, size: tuple[int, int] | None,
          expect: tuple[int, int]) -> np.ndarray:
    image = open_image(path)
    if mode == "I":
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise DataError(f"{path}: mode {image.mode}, the first image is 16-bit grayscale")
        image = image.convert("F")
    else:
        image = image.convert(mode)
    if size is not None:
        image = image.resize((size[1], size[0]), Image.LANCZOS)
    elif (image.height, image.width) != expect:
        raise DataError(f"{path}: size {image.height}x{image.width}, the first image is {expect[0]}x{expect[1]} "
                        "(pass --size HxW to resample all)")
    array = np.asarray(image)
    if dtype == np.uint16:
        array = np.clip(np.round(array), 0, 65535)
    array = array.astype(dtype)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _batches(folder: Path, files: list[str], mode: str, dtype: np.dtype, size, expect, labels) -> Iterator[Batch]:
    start = 0
    for chunk in batched(files, BATCH):
        images = np.stack([_load(folder / name, mode, dtype, size, expect) for name in chunk])
        yield images, {k: v[start:start + len(chunk)] for k, v in labels.items()}
        start += len(chunk)


def convert(src: str, dst: str, *, size: tuple[int, int] | None = None, overwrite: bool = False,
            limit: int | None = None, grayscale: bool = False, labels_csv: str | None = None) -> dict:
    folder = require_dir(src, "image")
    # names, not Path objects: 1.2M Paths held ~350 MB (peak 530 MB while sorting)
    files = sorted((p.name for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES and p.is_file()),
                   key=_natural_key)
    if not files:
        raise DataError(f"{folder}: no images found (*.png, *.jpg, *.jpeg)")
    csv_path = Path(labels_csv) if labels_csv else folder / "labels.csv"
    labels = read_labels(require_file(csv_path, "labels CSV"), files) \
        if labels_csv or csv_path.exists() else {}
    if limit is not None:
        files = files[:limit]
    first = open_image(folder / files[0])
    mode, dtype = _layout(first, grayscale)
    return write_batches(dst, _batches(folder, files, mode, dtype, size, (first.height, first.width), labels),
                         source_format=NAME, source_path=folder, overwrite=overwrite,
                         attrs={"files": len(files), "labels_csv": str(csv_path) if labels else ""})
