"""MPIIGaze "Normalized" .mat files -> real eye-patch store.

MPIIGaze (Zhang et al., CVPR 2015) is the real domain of the SimGAN paper's gaze
experiment (Sec. 3.1). Its ``Data/Normalized/pXX/dayYY.mat`` files (MATLAB v5, read
with ``scipy.io.loadmat``; v7.3 HDF5 files are read too) hold a struct ``data`` with
``left`` and ``right``, each with ``image`` N x 36 x 60 uint8 (grayscale, histogram-
equalized eye patches in the normalized camera), ``gaze`` N x 3 and ``pose`` N x 3.

Images only by default (the real domain is unlabeled in SimGAN). With ``--labels``:

- ``look_vec`` (3): ``gaze`` as stored (normalized camera: x right, y down, z forward,
  pointing from the eye, so z < 0 toward the camera);
- ``gaze`` [yaw, pitch] radians in the project's convention (yaw > 0 toward larger image
  x, pitch > 0 up). MPIIGaze's own code uses yaw = atan2(-x, -z): the opposite yaw sign;
- ``head_pose`` (3): ``pose`` as stored (a rotation vector); ``eye`` (0 left, 1 right).

``--mirror-right`` flips right-eye patches horizontally so all look like left eyes (as
many gaze pipelines do); their ``look_vec`` x, ``gaze`` yaw and pose are mirrored too.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import scipy.io

from simgan.data.convert._common import (
    Batch, check_finite, check_rows, gaze_angles, require_dir, resize, write_batches,
)
from simgan.errors import DataError

NAME = "mpiigaze"
HELP = "MPIIGaze Normalized folder (pXX/dayYY.mat) or one .mat file"
_EYES = {"both": ("left", "right"), "left": ("left",), "right": ("right",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", action="store_true", help="keep gaze, look_vec, head_pose and eye labels")
    parser.add_argument("--eyes", choices=sorted(_EYES), default="both", help="which eyes to take (default both)")
    parser.add_argument("--mirror-right", action="store_true", help="flip right eyes to look like left eyes")


def _read_v73(path: Path) -> dict:
    """MATLAB v7.3 is HDF5 with arrays stored transposed (column-major)."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: cannot read as a MATLAB v7.3 file ({err})") from None
    with f:
        if "data" not in f:
            raise DataError(f"{path}: no struct 'data' (has {sorted(f.keys())})")
        out = {}
        for eye in ("left", "right"):
            if eye in f["data"]:
                out[eye] = {k: np.asarray(v).T for k, v in f["data"][eye].items() if isinstance(v, h5py.Dataset)}
        return out


def read_mat(path: Path) -> dict:
    """``{eye: {"image", "gaze", "pose"}}`` from one Normalized .mat file."""
    try:
        mat = scipy.io.loadmat(path, simplify_cells=True)
        if "data" not in mat:
            raise DataError(f"{path}: no struct 'data' (has {sorted(k for k in mat if not k.startswith('__'))})")
        data = mat["data"]
    except NotImplementedError:
        data = _read_v73(path)
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError) as err:
        raise DataError(f"{path}: cannot read as a MATLAB file ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: 'data' is not a struct with 'left'/'right'")
    return data


def _eye_arrays(path: Path, data: dict, eye: str, labels: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    part = data.get(eye)
    if not isinstance(part, dict) or "image" not in part:
        raise DataError(f"{path}: no field data.{eye}.image")
    images = np.asarray(part["image"])
    if images.ndim == 2:  # loadmat squeezes a single sample
        images = images[None]
    if images.ndim != 3:
        raise DataError(f"{path}: data.{eye}.image should be N x 36 x 60, has shape {images.shape}")
    images = check_finite(images, str(path), f"data.{eye}.image")
    if images.dtype != np.uint8:
        images = np.clip(np.round(images.astype(np.float64)), 0, 255).astype(np.uint8)
    out = {}
    if labels:
        for key in ("gaze", "pose"):
            if key not in part:
                raise DataError(f"{path}: no field data.{eye}.{key} (needed by --labels)")
        n = len(images)
        gaze = np.asarray(part["gaze"], dtype=np.float64).reshape(-1, 3)
        pose = np.asarray(part["pose"], dtype=np.float64).reshape(-1, 3)
        check_finite(check_rows(gaze, n, str(path), f"data.{eye}.gaze"), str(path), f"data.{eye}.gaze")
        check_finite(check_rows(pose, n, str(path), f"data.{eye}.pose"), str(path), f"data.{eye}.pose")
        out = {"look_vec": gaze, "head_pose": pose, "eye": np.full(n, 0 if eye == "left" else 1, np.int64)}
    return images[:, None], out


def _mirror(images: np.ndarray, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    labels = dict(labels)
    if labels:
        labels["look_vec"] = labels["look_vec"] * [-1.0, 1.0, 1.0]
        # A rotation vector under the mirror x -> -x becomes (rx, -ry, -rz).
        labels["head_pose"] = labels["head_pose"] * [1.0, -1.0, -1.0]
    return images[..., ::-1].copy(), labels


def _batches(files: list[Path], eyes: tuple[str, ...], labels: bool, mirror_right: bool,
             size: tuple[int, int] | None) -> Iterator[Batch]:
    for path in files:
        data = read_mat(path)
        for eye in eyes:
            images, out = _eye_arrays(path, data, eye, labels)
            if eye == "right" and mirror_right:
                images, out = _mirror(images, out)
            if labels:
                out["gaze"] = gaze_angles(out["look_vec"], y_up=False)
                out = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in out.items()}
            if len(images):
                yield resize(images, size), out


def convert(src: str, dst: str, *, size: tuple[int, int] | None = None, overwrite: bool = False,
            limit: int | None = None, labels: bool = False, eyes: str = "both", mirror_right: bool = False) -> dict:
    src_path = Path(src)
    if src_path.is_file():
        files = [src_path]
    else:
        files = sorted(require_dir(src_path, "MPIIGaze Normalized").rglob("*.mat"))
        if not files:
            raise DataError(f"{src_path}: no .mat files found (expected pXX/dayYY.mat)")
    return write_batches(dst, _batches(files, _EYES[eyes], labels, mirror_right, size), source_format=NAME,
                         source_path=src_path, overwrite=overwrite, limit=limit, attrs={
                             "eyes": eyes, "mirror_right": int(mirror_right), "files": len(files),
                             **({"gaze_convention": "yaw>0 toward larger image x, pitch>0 up; radians; "
                                                    "look_vec in the normalized camera (x right, y down)"}
                                if labels else {}),
                         })
