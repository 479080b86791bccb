"""Where a stream's store comes from: a file the user has, or one the project makes once.

Each source turns into one store file (see :mod:`simgan.data.store`). The DataModule
calls :meth:`prepare` once (on rank zero, in ``prepare_data``) and then reads
:attr:`path` everywhere. Sources are chosen in the ``data`` config group:

- :class:`StoreFile`: a store the user converted (``python -m simgan.data.convert``).
- :class:`RenderedStore`: a simulator's output, rendered once and cached by a key of
  its arguments and the simulator's ``RENDER_VERSION``, so reruns don't re-render.
- :class:`NpzStore`: images shipped as ``.npz`` (the embedded real eyes), converted
  once into the cache.

Every source takes ``n``: how many images the stream has. A rendered source renders
``n``; a file source uses its first ``n`` samples (``null``: all), which makes quick
runs on big stores possible (``debug=default`` sets it).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tqdm import tqdm

from simgan.data.store import StoreWriter, check_store, write_store
from simgan.errors import ConfigError, DataError


# Images per rendered block: a multiple of every simulator's vectorised step, ~35 MB of
# 36x60 eyes (plus the renderer's temporaries).
RENDER_BLOCK = 16384


class StoreFile:
    """A store that already exists on disk."""

    def __init__(self, path: str, n: int | None = None):
        self.path = Path(path)
        self.n = n

    def prepare(self) -> Path:
        check_store(self.path)
        return self.path

    def describe(self) -> str:
        return f"store {self.path}"


def _import(dotted: str) -> Callable:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"renderer '{dotted}' cannot be imported ({err})") from None


class RenderedStore:
    """A simulator's labeled images, rendered on first use and cached as a store.

    ``renderer`` is the dotted path of a function ``f(n, height, width, seed, **kwargs)
    -> (images N x C x H x W, {label: N x ...})``; its module may define
    ``RENDER_VERSION`` so that a change to the simulator invalidates old caches.

    A renderer that also takes ``start`` (images ``start .. start + n - 1`` of the
    sequence ``f(n_total, ...)`` renders, bit for bit: the eye and digit simulators) is
    rendered in blocks of ``RENDER_BLOCK`` images, each appended to the store's partial
    file as soon as it is made: memory stays that of one block whatever ``n`` (1.2M
    eyes, the paper's set size, are 2.6 GB in one array), and the file is the one a
    single call would give, so the cache key is unchanged. Other renderers are called
    once for all ``n``.
    """

    def __init__(self, renderer: str, n: int, height: int, width: int, seed: int, cache_dir: str,
                 name: str | None = None, pixel_range: list[float] | None = None,
                 description: str = "", **kwargs: Any):
        if n < 1:
            raise ConfigError(f"data: number of rendered images must be >= 1, got n={n}")
        self.renderer = renderer
        self.n = None  # the store holds exactly the n rendered images
        self.args = {"n": int(n), "height": int(height), "width": int(width), "seed": int(seed), **kwargs}
        self.pixel_range = tuple(pixel_range) if pixel_range is not None else None
        self.description = description
        version = getattr(importlib.import_module(renderer.rpartition(".")[0]), "RENDER_VERSION", 0) \
            if "." in renderer else 0
        key = json.dumps({"renderer": renderer, "version": version, **self.args}, sort_keys=True)
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        stem = name or renderer.rpartition(".")[2]
        self.path = Path(cache_dir) / f"{stem}_{height}x{width}_n{n}_s{seed}_{digest}.h5"
        self._version = version

    def prepare(self) -> Path:
        if self.path.exists():
            check_store(self.path)
            return self.path
        render = _import(self.renderer)
        attrs = {
            "source_format": "rendered", "source_path": self.renderer,
            "converter_version": str(self._version), "render_args": json.dumps(self.args),
            "description": self.description,
        }
        if "start" not in _parameters(render):
            images, labels = render(**self.args)
            write_store(self.path, images, labels, pixel_range=self.pixel_range, overwrite=True, attrs=attrs)
            return self.path
        n = self.args["n"]
        blocks = (render(**{**self.args, "n": min(RENDER_BLOCK, n - start), "start": start})
                  for start in range(0, n, RENDER_BLOCK))  # lazy: one block in memory at a time
        images, labels = next(blocks)
        specs = {k: (np.shape(v)[1:], np.asarray(v).dtype) for k, v in labels.items()}
        # the bar only for renders that take a while; tqdm hides it when stderr is no TTY
        with StoreWriter(self.path, images.shape[1:], images.dtype, specs, attrs, self.pixel_range,
                         overwrite=True) as writer, \
                tqdm(total=n, desc=f"render {self.path.stem}", unit="img", mininterval=1.0,
                     disable=True if n <= 4 * RENDER_BLOCK else None) as bar:
            writer.append(images, labels)
            bar.update(len(images))
            for images, labels in blocks:
                writer.append(images, labels)
                bar.update(len(images))
        return self.path

    def describe(self) -> str:
        return f"{self.description or self.renderer} ({self.args['n']} rendered, cached at {self.path})"


def _parameters(function: Callable) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: render in one call
        return set()


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of uint8 N x C x H x W images to (height, width), per channel."""
    from PIL import Image

    h, w = size
    out = np.empty((*images.shape[:2], h, w), dtype=images.dtype)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            out[i, c] = np.asarray(Image.fromarray(plane).resize((w, h), Image.BILINEAR))
    return out


class NpzStore:
    """Images in an ``.npz`` file (array ``images``: N x H x W or N x C x H x W)."""

    def __init__(self, npz: str, cache_dir: str, key: str = "images", description: str = "",
                 height: int | None = None, width: int | None = None, n: int | None = None):
        self.npz = Path(npz)
        self.n = n
        self.key = key
        self.description = description
        self.size = (int(height), int(width)) if height and width else None
        suffix = f"_{height}x{width}" if self.size else ""
        self.path = Path(cache_dir) / f"{self.npz.stem}{suffix}.h5"

    def prepare(self) -> Path:
        if self.path.exists() and self.path.stat().st_mtime >= self.npz.stat().st_mtime:
            check_store(self.path)
            return self.path
        if not self.npz.is_file():
            raise DataError(f"{self.npz}: file not found (expected an .npz with array '{self.key}')")
        with np.load(self.npz) as arrays:
            if self.key not in arrays:
                raise DataError(f"{self.npz}: no array '{self.key}' (has {sorted(arrays.files)})")
            images = arrays[self.key]
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise DataError(f"{self.npz}: array '{self.key}' must be N x H x W or N x C x H x W, has shape {images.shape}")
        if self.size and images.shape[2:] != self.size:
            images = resize_images(images, self.size)
        write_store(self.path, images, attrs={"source_format": "npz", "source_path": str(self.npz),
                                              "description": self.description}, overwrite=True)
        return self.path

    def describe(self) -> str:
        return f"{self.description or self.npz.name} (from {self.npz})"
