"""Kaggle "Eye Gaze" (kmader / 4Quant) HDF5 files -> store.

The dataset packs the SimGAN paper's gaze data (Sec. 3.1: UnityEyes synthetic eyes vs.
MPIIGaze real eyes) as 35 x 55 grayscale patches:

- ``gaze.h5`` / ``synthetic_gaze.h5``: ``image`` N x 35 x 55 uint8 and ``look_vec`` N x 3
  (UnityEyes' ``look_vec``: Unity camera frame, x right, y up, z < 0 toward the camera);
- ``real_gaze.h5``: ``image`` only (MPIIGaze eyes, unlabeled).

Labels (when ``look_vec`` is present): ``look_vec`` (3) as stored and ``gaze`` [yaw,
pitch] radians in the project's convention (see ``_common.gaze_angles``). Other datasets
in the file (e.g. ``path``) are ignored. Float images are taken to be 0-255.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from simgan.data.convert._common import (
    Batch, check_finite, check_rows, gaze_angles, require_file, resize, write_batches,
)
from simgan.errors import DataError

NAME = "kaggle-gaze"
HELP = "Kaggle 'eye-gaze' HDF5 (gaze.h5, synthetic_gaze.h5, real_gaze.h5)"
BATCH = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-labels", dest="labels", action="store_false",
                        help="drop look_vec/gaze even if the file has them")


def _batches(src: Path, f: h5py.File, size: tuple[int, int] | None, labels: bool) -> Iterator[Batch]:
    if "image" not in f or not isinstance(f["image"], h5py.Dataset):
        raise DataError(f"{src}: no 'image' dataset (has {sorted(f.keys())}); expected the Kaggle eye-gaze layout")
    images = f["image"]
    if images.ndim == 4 and images.shape[-1] == 1:
        pass
    elif images.ndim != 3:
        raise DataError(f"{src}: 'image' should be N x H x W, has shape {images.shape}")
    n = images.shape[0]
    look = None
    if labels and "look_vec" in f:
        look = f["look_vec"]
        if look.ndim != 2 or look.shape[1] < 3:
            raise DataError(f"{src}: 'look_vec' should be N x 3, has shape {look.shape}")
        check_rows(look, n, str(src), "'look_vec'")
    for start in range(0, n, BATCH):
        try:
            batch = np.asarray(images[start:start + BATCH]).reshape(-1, 1, *images.shape[1:3])
        except OSError as err:
            raise DataError(f"{src}: cannot read 'image' rows {start}.. ({err})") from None
        if batch.dtype != np.uint8:
            check_finite(batch, f"{src}: 'image' rows {start}..", "image data")
            batch = np.clip(np.round(batch.astype(np.float64)), 0, 255).astype(np.uint8)
        batch = resize(batch, size)
        out = {}
        if look is not None:
            vec = check_finite(np.asarray(look[start:start + BATCH, :3], dtype=np.float64),
                               f"{src}: 'look_vec' rows {start}..", "look_vec")
            out = {"look_vec": vec.astype(np.float32), "gaze": gaze_angles(vec, y_up=True)}
        yield batch, out


def convert(src: str, dst: str, *, size: tuple[int, int] | None = None, overwrite: bool = False,
            limit: int | None = None, labels: bool = True) -> dict:
    src_path = require_file(src, "Kaggle eye-gaze HDF5 file")
    try:
        f = h5py.File(src_path, "r")
    except OSError as err:
        raise DataError(f"{src_path}: cannot open as HDF5 ({err})") from None
    with f:
        return write_batches(dst, _batches(src_path, f, size, labels), source_format=NAME, source_path=src_path,
                             overwrite=overwrite, limit=limit, attrs={
                                 "gaze_convention": "yaw>0 toward larger image x, pitch>0 up; radians; "
                                                    "from look_vec in Unity camera frame (x right, y up)",
                             })
