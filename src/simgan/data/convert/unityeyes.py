"""UnityEyes renders (``N.jpg`` + ``N.json``) -> labeled eye-patch store.

UnityEyes (Wood et al., ETRA 2016) is the simulator of the SimGAN paper's gaze
experiment (Sec. 3.1). Each render comes with a JSON file; this converter reads:

- ``eye_details.look_vec``: ``"(x, y, z, w)"``, the gaze direction in the Unity camera
  frame (x right, y up, z < 0 toward the camera); ``w`` is ignored;
- ``interior_margin_2d`` and ``iris_2d``: lists of ``"(x, y, z)"`` screen points in
  pixels with y measured from the BOTTOM of the image (Unity screen space), as GazeML
  (Park et al., ETRA 2018) and other public readers treat them (``row = height - y``).

The patch is cropped around the eye: centred on the interior margin's bounding box,
1.5 x its width (eye corner to corner), with the aspect of ``--size`` (default 36x60),
grayscale, resampled with Lanczos. Labels:

- ``look_vec`` (3) as stored; ``gaze`` [yaw, pitch] radians, yaw > 0 toward larger image
  x, pitch > 0 up (the project's convention, shared with the eye simulator);
- ``pupil`` [x, y]: the iris landmarks' mean mapped into the patch, in pixels with pixel
  centres at integer coordinates (x = column, y = row), as the eye simulator's ``pupil``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from simgan.data.convert._common import (
    Batch, batched, gaze_angles, open_image, parse_floats, require_dir, write_batches,
)
from simgan.errors import DataError

NAME = "unityeyes"
HELP = "UnityEyes folder of N.jpg + N.json renders"
DEFAULT_SIZE = (36, 60)
CROP_SCALE = 1.5
BATCH = 256
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.stem))


def _pairs(src: Path) -> list[tuple[Path, Path]]:
    images = {p.stem: p for p in src.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
    jsons = {p.stem: p for p in src.iterdir() if p.suffix.lower() == ".json"}
    for stem, path in sorted(images.items()):
        if stem not in jsons:
            raise DataError(f"{path.with_suffix('.json')}: missing (every UnityEyes image needs its JSON)")
    for stem, path in sorted(jsons.items()):
        if stem not in images:
            raise DataError(f"{path.with_suffix('.jpg')}: missing (the JSON {path.name} has no image)")
    return [(images[s], jsons[s]) for s in sorted(images, key=lambda s: _natural_key(Path(s)))]


def _landmarks(data: dict, key: str, where: Path) -> np.ndarray:
    points = data.get(key)
    if not isinstance(points, list) or not points:
        raise DataError(f"{where}: no '{key}' landmark list")
    return np.stack([parse_floats(p, str(where), f"a '{key}' point", 2) for p in points])


def read_sample(image_path: Path, json_path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One render -> (patch H x W uint8, look_vec (3,), pupil (2,) in patch pixels)."""
    try:
        data = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{json_path}: cannot read JSON ({err})") from None
    look = (data.get("eye_details") or {}).get("look_vec", data.get("look_vec"))
    if look is None:
        raise DataError(f"{json_path}: no 'look_vec' (expected eye_details.look_vec)")
    look_vec = parse_floats(look, str(json_path), "look_vec", 3)
    if not np.isfinite(look_vec).all() or np.linalg.norm(look_vec) == 0:
        raise DataError(f"{json_path}: look_vec {look!r} is not a finite, non-zero vector")
    margin, iris = _landmarks(data, "interior_margin_2d", json_path), _landmarks(data, "iris_2d", json_path)

    image = open_image(image_path).convert("L")
    iw, ih = image.size
    margin[:, 1], iris[:, 1] = ih - margin[:, 1], ih - iris[:, 1]
    h, w = size
    left, right = margin[:, 0].min(), margin[:, 0].max()
    if not np.isfinite(margin).all() or right - left < 1:
        raise DataError(f"{json_path}: interior_margin_2d spans no width (cannot crop the eye)")
    cx, cy = (left + right) / 2, (margin[:, 1].min() + margin[:, 1].max()) / 2
    bw = CROP_SCALE * (right - left)
    bh = bw * h / w
    box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    # PIL wants the box inside the image: pad by edge replication when the eye is near a border.
    pad = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - iw, box[3] - ih)))
    if pad:
        image = Image.fromarray(np.pad(np.asarray(image), pad, mode="edge"))
    patch = image.resize((w, h), Image.LANCZOS, box=tuple(box + pad))
    # Landmarks are continuous screen coordinates (pixel i spans [i, i + 1]); the label
    # puts pixel centres at integers, like the eye simulator.
    pupil = (iris[:, :2].mean(0) - box[:2]) * np.array([w / bw, h / bh]) - 0.5
    return np.asarray(patch, dtype=np.uint8), look_vec, pupil


def _batches(pairs: list[tuple[Path, Path]], size: tuple[int, int]) -> Iterator[Batch]:
    for chunk in batched(pairs, BATCH):
        samples = [read_sample(img, js, size) for img, js in chunk]
        look = np.stack([s[1] for s in samples])
        yield np.stack([s[0] for s in samples])[:, None], {
            "look_vec": look.astype(np.float32),
            "gaze": gaze_angles(look, y_up=True),
            "pupil": np.stack([s[2] for s in samples]).astype(np.float32),
        }


def convert(src: str, dst: str, *, size: tuple[int, int] | None = None, overwrite: bool = False,
            limit: int | None = None) -> dict:
    folder = require_dir(src, "UnityEyes")
    size = size or DEFAULT_SIZE
    pairs = _pairs(folder)
    if not pairs:
        raise DataError(f"{folder}: no images found (expected N.jpg + N.json UnityEyes renders)")
    if limit is not None:
        pairs = pairs[:limit]
    return write_batches(dst, _batches(pairs, size), source_format=NAME, source_path=folder, overwrite=overwrite,
                         attrs={
                             "crop": f"centred on interior_margin_2d, {CROP_SCALE} x eye width, aspect of {size}",
                             "gaze_convention": "yaw>0 toward larger image x, pitch>0 up; radians",
                             "pupil_convention": "iris_2d mean in patch pixels (x column, y row, "
                                                 "pixel centres at integers)",
                         })
