"""NYU hand pose dataset -> hand-crop depth store (real or synthetic frames).

The NYU hand pose dataset (Tompson et al., SIGGRAPH 2014) is the data of the SimGAN
paper's hand experiment (Sec. 4.3): Kinect depth of one subject's hand (real) and depth
renders of a fitted hand model for the same frames (synthetic). A split folder
(``train/`` or ``test/``) holds:

- ``depth_K_NNNNNNN.png`` (real) and ``synthdepth_K_NNNNNNN.png`` (synthetic): 640 x 480
  RGB PNGs with depth in millimetres = G * 256 + B (0 = no depth); K = Kinect 1-3
  (1 = front view, the one the paper uses), NNNNNNN = frame number from 1;
- ``joint_data.mat``: ``joint_uvd`` and ``joint_xyz``, Kinects x frames x 36 x 3
  (u, v pixels as 0-based indices, d mm; x, y, z mm).

Each frame is cropped as in DeepPrior (Oberweger et al., CVWW 2015): a ``--cube`` mm
(default 300) cube centred on the mean of the 36 joints (u, v, d), projected with the
Kinect focal lengths (588.04, 587.08 px) at the centre's depth, sampled with nearest
neighbour (interpolating depth would invent surfaces between hand and background) at
``--size`` (default 224x224 as in the paper; 64x64 suits CPU training).

Depth is normalized as ``(z - z_c) / (cube / 2)`` with z_c the centre depth in whole
mm: nearer than the cube clips to -1; no depth, beyond the cube or outside the image
is background = 1. Stored as float32, ``pixel_range`` [-1, 1], like
``simgan.data.simulators.hand_depth``. Labels: ``joints`` 36 x 3 (u, v in crop pixels with
pixel centres at integers, like NYU's own u, v; d normalized like the image), ``joints_xyz``
36 x 3 mm as stored, ``crop`` [x0, y0, x1, y1, z_c] (box in source pixels, centre depth
mm) and ``frame`` (NYU frame number). The paper instead masked real frames with the
synthetic render and subtracted 2000 mm; the cube crop is the common practice since.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy.io

from simgan.data.convert._common import (
    Batch, batched, check_finite, open_image, require_dir, require_file, write_batches,
)
from simgan.errors import DataError

NAME = "nyu-hand"
HELP = "NYU hand pose dataset split folder (depth_*.png / synthdepth_*.png + joint_data.mat)"
DEFAULT_SIZE = (224, 224)
FOCAL = (588.036865, 587.075073)
BATCH = 64
_PREFIX = {"real": "depth", "synthetic": "synthdepth"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=sorted(_PREFIX), required=True,
                        help="real Kinect frames (depth_*.png) or the synthetic renders (synthdepth_*.png)")
    parser.add_argument("--kinect", type=int, default=1, choices=(1, 2, 3), help="camera (1 = front view, default)")
    parser.add_argument("--cube", type=float, default=300.0, help="crop cube side in mm (default 300)")


def read_depth(path: Path) -> np.ndarray:
    """A NYU depth PNG -> H x W float32 millimetres (0 = no depth)."""
    image = open_image(path)
    if image.mode not in ("RGB", "RGBA"):
        raise DataError(f"{path}: expected an RGB PNG with depth in G*256+B, got mode {image.mode}")
    rgb = np.asarray(image)
    return (rgb[..., 1].astype(np.float32) * 256.0 + rgb[..., 2]).astype(np.float32)


def read_joints(path: Path, kinect: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(joint_uvd, joint_xyz or None) for one Kinect: frames x J x 3 each."""
    try:
        mat = scipy.io.loadmat(path, variable_names=["joint_uvd", "joint_xyz"])
    except (scipy.io.matlab.MatReadError, NotImplementedError, ValueError, TypeError, OSError) as err:
        raise DataError(f"{path}: cannot read as a MATLAB file ({err})") from None
    if "joint_uvd" not in mat:
        raise DataError(f"{path}: no variable 'joint_uvd' (expected NYU joint_data.mat)")
    arrays = []
    for key in ("joint_uvd", "joint_xyz"):
        if key not in mat:
            arrays.append(None)
            continue
        a = np.asarray(mat[key], dtype=np.float64)
        if a.ndim == 3:          # a single camera saved without its axis
            a = a[None]
        if a.ndim != 4 or a.shape[-1] != 3:
            raise DataError(f"{path}: '{key}' should be kinects x frames x joints x 3, has shape {a.shape}")
        if kinect > a.shape[0]:
            raise DataError(f"{path}: '{key}' has {a.shape[0]} camera(s), --kinect {kinect} asked")
        arrays.append(check_finite(a[kinect - 1], str(path), f"'{key}'"))
    uvd, xyz = arrays
    if xyz is not None and xyz.shape != uvd.shape:
        raise DataError(f"{path}: 'joint_xyz' {xyz.shape} and 'joint_uvd' {uvd.shape} disagree")
    return uvd, xyz


def crop_frame(depth: np.ndarray, uvd: np.ndarray, cube: float, size: tuple[int, int],
               where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cube crop of one frame -> (H x W normalized depth, joints J x 3, crop [x0, y0, x1, y1, z_c])."""
    h, w = size
    u_c, v_c, z_c = uvd.mean(0)
    z_c = float(np.round(z_c))
    if z_c <= 0:
        raise DataError(f"{where}: joints' mean depth is {z_c} mm; cannot place the crop cube")
    half = cube / 2.0
    hx, hy = half * FOCAL[0] / z_c, half * FOCAL[1] / z_c
    # NYU u, v index pixels; pixel u's centre is u + 0.5 in continuous coordinates.
    x0, y0 = u_c + 0.5 - hx, v_c + 0.5 - hy
    xs = np.floor(x0 + (np.arange(w) + 0.5) * (2 * hx / w)).astype(np.int64)
    ys = np.floor(y0 + (np.arange(h) + 0.5) * (2 * hy / h)).astype(np.int64)
    inside = (ys[:, None] >= 0) & (ys[:, None] < depth.shape[0]) & (xs[None] >= 0) & (xs[None] < depth.shape[1])
    z = depth[np.clip(ys, 0, depth.shape[0] - 1)[:, None], np.clip(xs, 0, depth.shape[1] - 1)[None]]
    z = np.where(inside, z, 0.0)
    d = (z - z_c) / half
    d[(z <= 0) | (d > 1)] = 1.0
    joints = np.stack([(uvd[:, 0] + 0.5 - x0) * w / (2 * hx) - 0.5, (uvd[:, 1] + 0.5 - y0) * h / (2 * hy) - 0.5,
                       (uvd[:, 2] - z_c) / half], 1)
    return np.clip(d, -1.0, 1.0).astype(np.float32), joints, np.array([x0, y0, x0 + 2 * hx, y0 + 2 * hy, z_c])


def _batches(folder: Path, prefix: str, kinect: int, uvd: np.ndarray, xyz: np.ndarray | None,
             frames: list[int], cube: float, size: tuple[int, int]) -> Iterator[Batch]:
    for chunk in batched(frames, BATCH):
        images, joints, crops = [], [], []
        for i in chunk:
            png = folder / f"{prefix}_{kinect}_{i + 1:07d}.png"
            image, j, c = crop_frame(read_depth(require_file(png, "depth PNG")), uvd[i], cube, size, str(png))
            images.append(image)
            joints.append(j)
            crops.append(c)
        labels = {"joints": np.stack(joints).astype(np.float32), "crop": np.stack(crops).astype(np.float32),
                  "frame": np.asarray(chunk, np.int64) + 1}
        if xyz is not None:
            labels["joints_xyz"] = xyz[chunk].astype(np.float32)
        yield np.stack(images)[:, None], labels


def convert(src: str, dst: str, *, size: tuple[int, int] | None = None, overwrite: bool = False,
            limit: int | None = None, kind: str = "real", kinect: int = 1, cube: float = 300.0) -> dict:
    folder = require_dir(src, "NYU hand split")
    size = size or DEFAULT_SIZE
    if not cube > 0:
        raise DataError(f"--cube must be positive, got {cube}")
    prefix = _PREFIX[kind]
    pngs = sorted(folder.glob(f"{prefix}_{kinect}_*.png"))
    if not pngs:
        raise DataError(f"{folder}: no {prefix}_{kinect}_*.png images found")
    uvd, xyz = read_joints(require_file(folder / "joint_data.mat", "NYU joint_data.mat"), kinect)
    if len(pngs) != len(uvd):
        raise DataError(f"{folder}: {len(pngs)} {prefix}_{kinect}_*.png images but joint_data.mat has "
                        f"{len(uvd)} frames (label count must match image count)")
    frames = list(range(len(uvd) if limit is None else min(limit, len(uvd))))
    return write_batches(dst, _batches(folder, prefix, kinect, uvd, xyz, frames, cube, size), source_format=NAME,
                         source_path=folder, overwrite=overwrite, pixel_range=(-1.0, 1.0), attrs={
                             "kind": kind, "kinect": kinect, "cube_mm": cube, "focal_px": list(FOCAL),
                             "depth_normalization": "(z - z_c) / (cube / 2) clipped to [-1, 1]; "
                                                    "no depth, beyond the cube or outside the image = 1",
                         })
