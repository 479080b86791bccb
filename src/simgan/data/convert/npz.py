"""An ``.npz`` file (array ``images`` + aligned label arrays) -> store.

For data already in numpy: ``images`` is N x H x W, N x H x W x C (C <= 4) or
N x C x H x W; uint8 and uint16 stay as they are (pixel range 0-255 / 0-65535), floats
become float32 with ``--pixel-range LO,HI`` (default -1,1: the value range that maps to
the refiner's [-1, 1]). Every other array whose first dimension is N becomes a label of
the same name (floats as float32); 0-d arrays are skipped; any other shape is an error.

Arrays are streamed from the zip member in row batches, so a compressed file larger
than memory converts (Fortran-ordered arrays are the exception: loaded whole).
"""

from __future__ import annotations

import argparse
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from simgan.data.convert._common import Batch, check_finite, require_file, resize, write_batches
from simgan.errors import DataError

NAME = "npz"
HELP = "numpy .npz with 'images' (+ aligned arrays as labels)"
BATCH = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", default="images", help="name of the image array (default images)")
    parser.add_argument("--pixel-range", default=None, help="LO,HI of float images (default -1,1)")


class _Member:
    """One ``.npy`` inside the zip: shape, dtype and row-batch reads without loading it."""

    def __init__(self, zf: zipfile.ZipFile, name: str, where: Path):
        self.zf, self.name, self.where = zf, name, where
        with zf.open(name + ".npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                self.shape, self.fortran, self.dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                self.shape, self.fortran, self.dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise DataError(f"{where}: array '{name}' uses .npy format {version}, not supported")
        if self.dtype.hasobject:
            raise DataError(f"{where}: array '{name}' holds Python objects (allow_pickle is off)")

    def rows(self, batch: int) -> Iterator[np.ndarray]:
        if self.fortran:
            with np.load(self.zf.filename) as arrays:
                whole = arrays[self.name]
            for start in range(0, len(whole), batch):
                yield whole[start:start + batch]
            return
        row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with self.zf.open(self.name + ".npy") as f:
            version = np.lib.format.read_magic(f)
            (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
            for start in range(0, self.shape[0], batch):
                count = min(batch, self.shape[0] - start)
                data = f.read(row * count)
                if len(data) != row * count:
                    raise DataError(f"{self.where}: array '{self.name}' is truncated at row {start}")
                yield np.frombuffer(data, self.dtype).reshape(count, *self.shape[1:])


def _to_nchw(batch: np.ndarray, shape: tuple, where: Path) -> np.ndarray:
    if len(shape) == 3:
        return batch[:, None]
    if len(shape) == 4 and shape[3] <= 4 < shape[1]:
        return batch.transpose(0, 3, 1, 2)
    if len(shape) == 4 and shape[1] <= 4:
        return batch
    raise DataError(f"{where}: images must be N x H x W, N x H x W x C or N x C x H x W (C <= 4), got {shape}")


def _image_dtype(batch: np.ndarray, where: Path, start: int) -> np.ndarray:
    if batch.dtype in (np.uint8, np.uint16):
        return batch
    if batch.dtype.kind == "f":
        return check_finite(batch, str(where), "image data", start).astype(np.float32)
    if batch.dtype.kind in "iub":
        if batch.size and (batch.min() < 0 or batch.max() > 255):
            raise DataError(f"{where}: integer images of type {batch.dtype} must be within 0..255 "
                            "(or save them as uint8 / uint16)")
        return batch.astype(np.uint8)
    raise DataError(f"{where}: images have unsupported type {batch.dtype}")


def _batches(src: Path, images: _Member, labels: dict[str, _Member], size) -> Iterator[Batch]:
    streams = {name: m.rows(BATCH) for name, m in labels.items()}
    start = 0
    for batch in images.rows(BATCH):
        out = {}
        for name, stream in streams.items():
            values = check_finite(next(stream), str(src), f"label '{name}'", start)
            out[name] = values.astype(np.float32) if values.dtype.kind == "f" else values.copy()
        batch = _image_dtype(_to_nchw(batch, images.shape, src), src, start)
        yield resize(np.ascontiguousarray(batch), size), out
        start += len(batch)


def convert(src: str, dst: str, *, size: tuple[int, int] | None = None, overwrite: bool = False,
            limit: int | None = None, key: str = "images", pixel_range: str | None = None) -> dict:
    path = require_file(src, ".npz file")
    lo_hi = None
    if pixel_range is not None:
        try:
            lo, hi = (float(v) for v in pixel_range.split(","))
        except ValueError:
            raise DataError(f"--pixel-range must be LO,HI (e.g. 0,1), got {pixel_range!r}") from None
        if not hi > lo:
            raise DataError(f"--pixel-range needs HI > LO, got {pixel_range!r}")
        lo_hi = (lo, hi)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: not a readable .npz ({err})") from None
    with zf:
        names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        if key not in names:
            raise DataError(f"{path}: no array '{key}' (has {sorted(names)})")
        try:
            images = _Member(zf, key, path)
            members = {n: _Member(zf, n, path) for n in names if n != key}
        except (ValueError, OSError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: cannot read array headers ({err})") from None
        if not images.shape or images.shape[0] == 0:
            raise DataError(f"{path}: no images found (array '{key}' has shape {images.shape})")
        labels = {}
        for name, member in members.items():
            if len(member.shape) == 0:
                continue
            if member.shape[0] != images.shape[0]:
                raise DataError(f"{path}: array '{name}' has {member.shape[0]} rows for {images.shape[0]} images "
                                "(label count must match image count)")
            labels[name] = member
        try:
            return write_batches(dst, _batches(path, images, labels, size), source_format=NAME, source_path=path,
                                 overwrite=overwrite, limit=limit, pixel_range=lo_hi,
                                 attrs={"image_key": key})
        except (zipfile.BadZipFile, EOFError, zlib.error) as err:
            raise DataError(f"{path}: read error ({err})") from None
