"""Pieces every converter shares: streaming into a store, sizes, gaze angles, image I/O.

A converter is a generator of ``(images N x C x H x W, {label: N x ...})`` batches fed to
:func:`write_batches`, which opens the :class:`~simgan.data.store.StoreWriter` on the
first batch (its shapes and dtypes come from the data) and so never holds more than
one batch in memory. Any :class:`DataError` raised while reading the source aborts the
write, and the writer removes its ``.partial`` file: nothing is left at the destination.
SIGINT / SIGTERM (recorded by :class:`~simgan.reliability.signals.StopSignals`, which
``__main__`` holds) stop the write after the current batch, the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from simgan.data.store import StoreWriter, check_store
from simgan.errors import DataError
from simgan.reliability.signals import StopSignals

CONVERTER_VERSION = "1"
Batch = tuple[np.ndarray, Mapping[str, np.ndarray]]
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)", re.IGNORECASE)


def parse_size(text: str) -> tuple[int, int]:
    """``"36x60"`` -> (36, 60): height x width, as everywhere in the project."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(f"size must look like HxW (e.g. 36x60), got {text!r}")
    return int(match[1]), int(match[2])


def require_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found" if not path.exists()
                        else f"{path}: is not a folder ({what})")
    return path


def require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found" if not path.exists() else f"{path}: is not a file ({what})")
    return path


def refuse_existing(dst: str | Path, overwrite: bool) -> None:
    """Fail before reading any source if the destination exists (and --overwrite is off)."""
    if Path(dst).is_dir():
        never = " (--overwrite never replaces a directory)" if overwrite else ""
        raise DataError(f"{dst}: destination is a directory; give the store a file name "
                        f"(e.g. {Path(dst) / 'store.h5'}){never}")
    if Path(dst).exists() and not overwrite:
        raise DataError(f"{dst}: destination already exists (pass --overwrite to replace it)")


def check_finite(values: np.ndarray, where: str, what: str, start: int = 0) -> np.ndarray:
    """``values`` unchanged, or a DataError naming the first row with NaN/inf.

    ``start``: the index of ``values[0]`` in the whole source, so a batch's error names
    the source's row, not the batch's.
    """
    values = np.asarray(values)
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        bad = int(np.argwhere(~np.isfinite(values).reshape(len(values), -1).all(1))[0, 0]) if values.ndim else 0
        raise DataError(f"{where}: {what} contains NaN or inf (first at row {start + bad})")
    return values


def check_rows(values: np.ndarray, count: int, where: str, what: str) -> np.ndarray:
    if len(values) != count:
        raise DataError(f"{where}: {what} has {len(values)} rows for {count} images")
    return values


def parse_floats(text: object, where: str, what: str, count: int | None = None) -> np.ndarray:
    """Numbers from a UnityEyes-style string ``"(0.1, -0.2, 0.97)"`` (never ``eval``)."""
    values = np.asarray([float(v) for v in _FLOAT.findall(str(text))], dtype=np.float64)
    if count is not None and len(values) < count:
        raise DataError(f"{where}: {what} should hold {count} numbers, got {text!r}")
    return values[:count] if count is not None else values


def gaze_angles(vectors: np.ndarray, y_up: bool) -> np.ndarray:
    """Gaze vectors N x 3 (camera frame, pointing from the eye) -> N x 2 [yaw, pitch] rad.

    The project's convention (the eye simulator's): yaw > 0 looks toward larger image x,
    pitch > 0 looks up (toward smaller image y), both 0 when looking straight into the
    camera. Camera x points to image right; ``y_up`` says whether camera y points up
    (Unity: UnityEyes) or down (OpenCV: MPIIGaze). An eye looking at the camera has z < 0.
    """
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    up = v[:, 1] if y_up else -v[:, 1]
    yaw = np.arctan2(v[:, 0], -v[:, 2])
    pitch = np.arctan2(up, np.hypot(v[:, 0], v[:, 2]))
    return np.stack([yaw, pitch], 1).astype(np.float32)


def open_image(path: Path) -> Image.Image:
    """Opens and decodes an image now, turning PIL's errors into a DataError naming it."""
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None


def resize(images: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """N x C x H x W -> N x C x size, per channel with Lanczos (antialiased)."""
    if size is None or tuple(images.shape[2:]) == tuple(size):
        return images
    h, w = size
    out = np.empty((*images.shape[:2], h, w), dtype=images.dtype)
    for i, image in enumerate(images):
        for c, channel in enumerate(image):
            pil = Image.fromarray(channel.astype(np.float32) if images.dtype != np.uint8 else channel)
            resized = np.asarray(pil.resize((w, h), Image.LANCZOS))
            if images.dtype.kind in "ui":
                info = np.iinfo(images.dtype)
                resized = np.clip(np.round(resized), info.min, info.max)
            out[i, c] = resized
    return out


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def limited(batches: Iterable[Batch], limit: int | None) -> Iterator[Batch]:
    """Stops after ``limit`` images (a quick look at a big dataset)."""
    left = limit
    for images, labels in batches:
        if left is not None:
            if left <= 0:
                return
            images, labels = images[:left], {k: v[:left] for k, v in labels.items()}
            left -= len(images)
        yield images, labels


def write_batches(dst: str | Path, batches: Iterable[Batch], *, source_format: str, source_path: str | Path,
                  overwrite: bool = False, pixel_range: tuple[float, float] | None = None,
                  attrs: Mapping[str, object] | None = None, limit: int | None = None) -> dict:
    """Streams batches into a new store at ``dst``; returns its :func:`check_store` metadata."""
    refuse_existing(dst, overwrite)
    provenance = {
        "source_format": source_format,
        "source_path": str(Path(source_path).resolve()),
        "converter_version": CONVERTER_VERSION,
        **{k: (v if isinstance(v, (int, float, str)) else json.dumps(v)) for k, v in (attrs or {}).items()},
    }
    stream = iter(limited(batches, limit))
    first = next(stream, None)
    if first is None or len(first[0]) == 0:
        raise DataError(f"{source_path}: no images found")
    images, labels = first
    specs = {name: (np.asarray(v).shape[1:], np.asarray(v).dtype) for name, v in labels.items()}
    stop = StopSignals.active()
    with StoreWriter(dst, images.shape[1:], images.dtype, specs, provenance, pixel_range, overwrite) as writer:
        writer.append(images, labels)
        for images, labels in stream:
            _stop_here(stop, writer, dst)
            writer.append(images, labels)
        _stop_here(stop, writer, dst)
    return check_store(dst)


def _stop_here(stop: StopSignals | None, writer: StoreWriter, dst: str | Path) -> None:
    """Ends the conversion between two batches when a signal came (the writer then removes its file)."""
    if stop is not None:
        stop.raise_if_stopped(lambda name: f"Conversion stopped by {name} after {writer.count} images; nothing was "
                                           f"written at {dst} (its partial file was removed). Run the same command "
                                           "again to convert.")
