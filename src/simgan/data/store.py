"""The project's one on-disk dataset format: an HDF5 "store" (h5py).

Every dataset, synthetic or real, rendered or converted, lives in one layout::

    /images              N x C x H x W, uint8 (or uint16 / float32 for depth),
                         chunked per 64 samples (at most ~1 MiB), LZF-compressed
                         (older stores: gzip + shuffle; every layout reads alike)
    /labels/<name>       N x ...  optional, aligned with /images by index
    attrs (root)         format="simgan-store", version, count, pixel_range=[lo, hi],
                         label_names, label_shapes (JSON), source_format, source_path,
                         converter_version, created, plus any extra provenance

``pixel_range`` is the value range that maps to [-1, 1] when a sample is read (0-255
for uint8 images; e.g. a depth range in millimetres for float/uint16 depth maps).

Writing is atomic: :class:`StoreWriter` writes ``.<dst name>.<pid>.partial`` beside
``<dst>`` and renames it onto ``<dst>`` only when every sample is in and ``count`` is set,
so an interrupted run never leaves a file that looks complete; a second process writing
the same ``<dst>`` at once is refused, a full disk is an error naming the file
(:mod:`simgan.reliability.partials`, :mod:`simgan.reliability.disk`).

Reading is lazy: :class:`StoreDataset` opens the file on first access inside each
DataLoader worker, because h5py handles must not cross a fork, and a store larger than
memory streams from disk. A batch is read chunk-wise (``StoreDataset.__getitems__``),
and in training a streamed store is drawn in chunk-aware order
(:class:`~simgan.data.samplers.ChunkedBatchSampler`), so each chunk is decompressed
about once per batch. A damaged chunk or a NaN/inf pixel is an error naming the file
and the sample, wherever it is read.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from simgan.errors import DataError, DiskFullError
from simgan.reliability import partials
from simgan.reliability.disk import no_space, out_of_space, require_space
from simgan.reliability.hdf5_full import QuietOutOfSpace, keep_broken

STORE_FORMAT = "simgan-store"
STORE_VERSION = 1
IMAGE_DTYPES = (np.uint8, np.uint16, np.float32)
# /images filter, chosen by measurement (docs/data_formats.md, "Streaming at scale"): LZF
# decodes 1.4x (eyes) to 1.6x (224x224 depth) faster than gzip level 4 and writes 2.8x
# faster, for files 25% larger (eyes) or about as small (depth, without byte shuffle,
# which made depth both larger and slower). "none" (compression=False) reads fastest
# but makes depth stores 6x larger.
IMAGE_COMPRESSION = "lzf"
_DEFAULT_PIXEL_RANGE = {np.dtype(np.uint8): (0.0, 255.0), np.dtype(np.uint16): (0.0, 65535.0)}


def default_pixel_range(dtype: np.dtype) -> tuple[float, float]:
    """The value range that maps to [-1, 1] when nothing else is said (float: [-1, 1])."""
    return _DEFAULT_PIXEL_RANGE.get(np.dtype(dtype), (-1.0, 1.0))


def chunk_rows(sample_shape: Sequence[int], dtype: np.dtype | str, max_rows: int = 64) -> int:
    """Samples per HDF5 chunk of ``/images``: ``max_rows`` whole samples, capped at ~1 MiB.

    The one rule for every writer of a store (:class:`StoreWriter`, the refine export).
    """
    sample_bytes = int(np.prod(sample_shape)) * np.dtype(dtype).itemsize
    return max(1, min(int(max_rows), (1 << 20) // sample_bytes))


class StoreWriter:
    """Appends samples to a new store; atomic on success, removed on failure.

    ``compression``: an h5py filter name (``None``: :data:`IMAGE_COMPRESSION`; ``False``:
    none), ``compression_level`` for gzip, ``shuffle`` HDF5's byte shuffle. Any layout
    reads the same: the reader only sees HDF5's decoded samples.

    Use as a context manager::

        with StoreWriter(dst, image_shape=(1, 36, 60), labels={"gaze": ((2,), "float32")},
                         attrs={"source_format": "unityeyes", "source_path": src}) as w:
            for images, labels in batches:
                w.append(images, labels)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        image_shape: Sequence[int],
        image_dtype: np.dtype | str = np.uint8,
        labels: Mapping[str, tuple[Sequence[int], np.dtype | str]] | None = None,
        attrs: Mapping[str, object] | None = None,
        pixel_range: tuple[float, float] | None = None,
        overwrite: bool = False,
        chunk_samples: int = 64,
        compression: str | bool | None = None,
        compression_level: int | None = None,
        shuffle: bool = False,
    ):
        self.path = Path(path)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.image_dtype = np.dtype(image_dtype)
        self.labels = {k: (tuple(int(s) for s in shp), np.dtype(dt)) for k, (shp, dt) in (labels or {}).items()}
        self.attrs = dict(attrs or {})
        self.pixel_range = tuple(pixel_range) if pixel_range is not None else default_pixel_range(self.image_dtype)
        self.overwrite = overwrite
        self.chunk_samples = chunk_samples
        self.compression = IMAGE_COMPRESSION if compression is None else compression or None
        self.compression_level = compression_level if self.compression == "gzip" else None
        self.shuffle = bool(shuffle) and self.compression is not None
        self.count = 0
        self._file: h5py.File | None = None
        self._created: list[Path] = []
        self._handles: list = []
        if len(self.image_shape) != 3:
            raise DataError(f"{self.path}: image_shape must be (C, H, W), got {self.image_shape}")
        if self.image_dtype not in [np.dtype(d) for d in IMAGE_DTYPES]:
            raise DataError(f"{self.path}: image dtype {self.image_dtype} is not one of uint8, uint16, float32")

    @property
    def partial_path(self) -> Path:
        return partials.partial_path(self.path)

    def __enter__(self) -> "StoreWriter":
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a directory; give the store a file name "
                            f"(e.g. {self.path / 'store.h5'})")
        if self.path.exists() and not self.overwrite:
            raise DataError(f"{self.path}: already exists (pass overwrite to replace it)")
        other = partials.other_live_writer(self.path)
        if other is not None:
            raise DataError(f"{self.path}: another process (pid {other[1]}) is writing this store now "
                            f"(its partial file {other[0].name}); wait for it to finish or write elsewhere")
        partials.remove_orphans(self.path)
        self._created = _missing_folders(self.path.parent)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK):
            raise DataError(f"{self.path.parent}: destination folder is not writable")
        try:
            # "x": exclusive create, so this never empties a file some other writer holds
            self._file = h5py.File(self.partial_path, "x")
            self._create_datasets(self._file)
        except BaseException as err:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._discard()
            if isinstance(err, OSError):
                raise DataError(f"{self.path}: cannot create the store ({err})") from None
            raise
        return self

    def _discard(self) -> None:
        """Removes the partial file and the folders this writer created for it."""
        self.partial_path.unlink(missing_ok=True)
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:  # not empty (something else was written there meanwhile)
                break
        self._created = []

    def _abandon(self, *handles) -> DataError:
        """After ENOSPC inside HDF5: drop the partial file, keep the broken handles alive."""
        keep_broken(*handles)
        self._file = None
        self._discard()
        return no_space(self.path, f"store {self.path.name}")

    def _create_datasets(self, f: h5py.File) -> None:
        c, h, w = self.image_shape
        # One chunk holds 64 whole samples (a batch write touches few chunks; the
        # chunk-aware training order reads each chunk once per batch), capped at ~1 MiB
        # (h5py's default chunk cache): a random read decompresses a whole chunk, so 64
        # samples of 224x224 float32 (12.8 MB) made each one ~100 ms. 256-sample eye
        # chunks read no faster in chunk-aware order (docs/data_formats.md).
        chunk = chunk_rows(self.image_shape, self.image_dtype, self.chunk_samples)
        f.create_dataset(
            "images", shape=(0, c, h, w), maxshape=(None, c, h, w), dtype=self.image_dtype,
            chunks=(chunk, c, h, w), compression=self.compression, compression_opts=self.compression_level,
            shuffle=self.shuffle,
            fletcher32=True,  # a checksum per chunk: a corrupt read fails loudly instead of training on garbage
        )
        group = f.create_group("labels")
        for name, (shape, dtype) in self.labels.items():
            group.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                 chunks=(max(self.chunk_samples, 256), *shape))

    def append(self, images: np.ndarray, labels: Mapping[str, np.ndarray] | None = None) -> None:
        """Adds a batch: ``images`` N x C x H x W, each label N x ... (same N)."""
        assert self._file is not None, "use StoreWriter as a context manager"
        images = np.asarray(images)
        labels = dict(labels or {})
        n = len(images)
        if images.shape[1:] != self.image_shape:
            raise DataError(f"{self.path}: sample {self.count} has shape {images.shape[1:]}, "
                            f"the store holds {self.image_shape}")
        if images.dtype != self.image_dtype:
            raise DataError(f"{self.path}: images are {images.dtype}, the store holds {self.image_dtype}")
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            raise DataError(f"{self.path}: images {self.count}..{self.count + n - 1} contain NaN or inf")
        if set(labels) != set(self.labels):
            raise DataError(f"{self.path}: labels {sorted(labels)} given, the store declares {sorted(self.labels)}")
        for name, values in labels.items():
            values = np.asarray(values)
            if len(values) != n:
                raise DataError(f"{self.path}: label '{name}' has {len(values)} rows for {n} images")
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                row = self.count + int(np.argwhere(~np.isfinite(values.reshape(n, -1)).all(1))[0, 0])
                raise DataError(f"{self.path}: label '{name}' contains NaN or inf (first at row {row})")
        end = self.count + n
        require_space(self.path, images.nbytes + sum(np.asarray(v).nbytes for v in labels.values()),
                      f"store {self.path.name}")
        # The dataset handles stay open for the writer's life: HDF5 reports a failed write
        # (a full disk) only when it flushes, which a handle freed after each batch does
        # in its deallocator, where h5py prints the error and goes on. Flushing after
        # each batch turns it into an exception here, at the batch that hit it.
        handles = self._handles or [self._file["images"], *(self._file["labels"][k] for k in self.labels)]
        self._handles = handles
        try:
            with QuietOutOfSpace():
                handles[0].resize(end, axis=0)
                handles[0][self.count:end] = images
                for ds, name in zip(handles[1:], self.labels):
                    ds.resize(end, axis=0)
                    ds[self.count:end] = np.asarray(labels[name], dtype=ds.dtype)
                self._file.flush()
        except (OSError, RuntimeError) as err:
            if out_of_space(err):
                raise self._abandon(self._file, *handles) from None
            raise
        self.count = end

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._file = self._file, None
        self._handles = []
        if exc_type is not None or self.count == 0:
            if f is not None:
                if exc_type is DiskFullError:
                    # refused before writing: make room for what closing still writes
                    os.truncate(self.partial_path, 0)
                try:
                    with QuietOutOfSpace():
                        f.close()
                except (OSError, RuntimeError) as err:
                    if not out_of_space(err):
                        raise
                    self._abandon(f)
            self._discard()
            if exc_type is None:
                raise DataError(f"{self.path}: no images to write (zero samples)")
            return None
        assert f is not None
        f.attrs.update({
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "count": self.count,
            "pixel_range": np.asarray(self.pixel_range, dtype=np.float64),
            "label_names": json.dumps(sorted(self.labels)),
            "label_shapes": json.dumps({k: list(s) for k, (s, _) in self.labels.items()}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        for key, value in self.attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, np.ndarray)) else str(value)
        try:
            with QuietOutOfSpace():
                f.close()  # flushes what HDF5 still caches: may find the disk full too
        except (OSError, RuntimeError) as err:
            if out_of_space(err):
                raise self._abandon(f) from None
            self._discard()
            raise
        os.replace(self.partial_path, self.path)


def _missing_folders(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def write_store(
    path: str | os.PathLike,
    images: np.ndarray,
    labels: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, object] | None = None,
    pixel_range: tuple[float, float] | None = None,
    overwrite: bool = False,
    batch: int = 4096,
) -> Path:
    """Writes a whole in-memory dataset as a store (atomically); returns the path."""
    images = np.asarray(images)
    labels = {k: np.asarray(v) for k, v in (labels or {}).items()}
    if images.ndim != 4:
        raise DataError(f"{path}: images must be N x C x H x W, got shape {images.shape}")
    specs = {k: (v.shape[1:], v.dtype) for k, v in labels.items()}
    for name, values in labels.items():
        if len(values) != len(images):
            raise DataError(f"{path}: label '{name}' has {len(values)} rows for {len(images)} images")
    with StoreWriter(path, images.shape[1:], images.dtype, specs, attrs, pixel_range, overwrite) as w:
        for start in range(0, len(images), batch):
            w.append(images[start:start + batch], {k: v[start:start + batch] for k, v in labels.items()})
    return Path(path)


def check_store(path: str | os.PathLike, require_labels: Iterable[str] = ()) -> dict:
    """Opens a store and checks its layout up front; returns its metadata.

    Raises :class:`DataError` naming the file for a missing, truncated or corrupt file,
    a file that is not a store, zero images, and a label the config asks for that the
    store lacks or that does not align with the images.
    """
    path = Path(path)
    if not path.is_file():
        hint = " (a .partial file beside it means a write is running or was interrupted)" \
            if partials.staged(path) else ""
        raise DataError(f"{path}: store file not found{hint}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != STORE_FORMAT:
                raise DataError(f"{path}: not a simgan store (attribute format={f.attrs.get('format')!r}); "
                                "convert it with `python -m simgan.data.convert`")
            if "images" not in f:
                raise DataError(f"{path}: store has no 'images' dataset")
            images = f["images"]
            count = int(f.attrs.get("count", -1))
            if images.ndim != 4:
                raise DataError(f"{path}: 'images' must be N x C x H x W, has shape {images.shape}")
            if count != images.shape[0]:
                raise DataError(f"{path}: truncated store: attribute count={count} but {images.shape[0]} images")
            if count == 0:
                raise DataError(f"{path}: store holds zero images")
            labels = {name: f["labels"][name].shape[1:] for name in f.get("labels", {})}
            for name in require_labels:
                if name not in labels:
                    raise DataError(f"{path}: the config asks for label '{name}', the store has {sorted(labels)}")
                if f["labels"][name].shape[0] != count:
                    raise DataError(f"{path}: label '{name}' has {f['labels'][name].shape[0]} rows for {count} images")
            # Reading the first and last sample surfaces corrupt chunks now, not mid-epoch.
            images[0]
            images[count - 1]
            return {
                "path": str(path),
                "count": count,
                "shape": tuple(images.shape[1:]),
                "dtype": images.dtype,
                "pixel_range": tuple(float(v) for v in f.attrs.get("pixel_range", default_pixel_range(images.dtype))),
                "labels": labels,
                # samples per HDF5 chunk of /images (None: contiguous, any row reads alone)
                "chunk_rows": int(images.chunks[0]) if images.chunks else None,
                "attrs": {k: f.attrs[k] for k in f.attrs},
            }
    except DataError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{path}: cannot read store ({err})") from None


def corrupt_store(path: str | os.PathLike, what: str, err: BaseException) -> DataError:
    """The error for a store whose bytes do not decode (a bad chunk checksum, a damaged file)."""
    return DataError(f"{path}: corrupt store, cannot read {what} ({' '.join(str(err).split())}); the file is damaged: "
                     "convert or render it again")


def read_images(images, index, path: str | os.PathLike) -> np.ndarray:
    """``images[index]`` of a store's ``/images``; a damaged chunk is a :func:`corrupt_store` error.

    Every chunk carries a checksum (fletcher32), so a flipped bit is found on read,
    anywhere in the file (:func:`check_store` reads only the first and last sample).
    """
    try:
        return images[index]
    except OSError as err:
        where = f"samples {index.start}..{index.stop - 1}" if isinstance(index, slice) else f"sample {index}"
        raise corrupt_store(path, where, err) from None


def nonfinite_pixels(path: str | os.PathLike, index: int) -> DataError:
    """NaN and inf alike: clamping inf to the pixel range would train on made-up pixels."""
    return DataError(f"{path}: sample {index} has NaN or inf pixels; the store must hold finite values "
                     "(fix the data that made it and convert it again)")


# Stores up to this size are read into memory once per process: a random sample from a
# gzip chunk of 64 samples costs a whole chunk's decompression, which made the default
# eye data (43 MB) the slowest part of a CPU training step. Larger stores stream.
PRELOAD_LIMIT_BYTES = 512 * 2**20
# Chunk cache of a streaming reader: holds the chunks of a few batches.
_CHUNK_CACHE_BYTES = 64 * 2**20


class StoreDataset(Dataset):
    """Samples of a store as ``{"image": float32 C x H x W in [-1, 1], <label>: tensor}``.

    ``indices`` selects a subset (a train/validation split) without copying the file.
    The h5py handle is opened lazily in the process that reads, so DataLoader workers
    each get their own. ``preload`` reads the images into memory on first access
    (``None``: when the store is at most ``PRELOAD_LIMIT_BYTES``); labels are always
    read whole, they are small.
    """

    def __init__(self, path: str | os.PathLike, labels: Sequence[str] = (), indices: Sequence[int] | None = None,
                 preload: bool | None = None):
        self.path = str(path)
        self.label_names = tuple(labels)
        self.meta = check_store(self.path, self.label_names)
        self.indices = np.arange(self.meta["count"]) if indices is None else np.asarray(indices, dtype=np.int64)
        nbytes = self.meta["count"] * int(np.prod(self.meta["shape"])) * np.dtype(self.meta["dtype"]).itemsize
        self.preload = nbytes <= PRELOAD_LIMIT_BYTES if preload is None else bool(preload)
        lo, hi = self.meta["pixel_range"]
        # x -> 2 (x - lo) / (hi - lo) - 1, the refiner's tanh range (paper Sec. 3: inputs in [-1, 1]).
        self._scale = 2.0 / (hi - lo)
        self._offset = -lo * self._scale - 1.0
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._images: np.ndarray | h5py.Dataset | None = None
        self._labels: dict[str, np.ndarray] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.meta["shape"]

    def __len__(self) -> int:
        return len(self.indices)

    def _open(self) -> None:
        # A handle opened before a fork is unusable in the child: reopen per process.
        if self._images is not None and self._pid == os.getpid():
            return
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES, rdcc_nslots=100_003)
            self._pid = os.getpid()
            self._images = self._file["images"][:] if self.preload else self._file["images"]
            self._labels = {name: self._file["labels"][name][:] for name in self.label_names}
        except OSError as err:
            raise corrupt_store(self.path, "its images or labels", err) from None
        if self.preload and np.dtype(self.meta["dtype"]).kind == "f":
            bad = ~np.isfinite(self._images.reshape(len(self._images), -1)).all(1)
            if bad.any():
                raise nonfinite_pixels(self.path, int(np.argmax(bad)))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        self._open()
        idx = int(self.indices[i])
        pixels = read_images(self._images, idx, self.path)
        if not self.preload and pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
            raise nonfinite_pixels(self.path, idx)
        image = torch.from_numpy(np.asarray(pixels, dtype=np.float32)) * self._scale + self._offset
        # inf never reaches here (refused above, as NaN is): the clamp is for rounding only
        sample = {"image": image.clamp_(-1.0, 1.0), "index": torch.tensor(idx)}
        for name in self.label_names:
            sample[name] = torch.from_numpy(np.asarray(self._labels[name][idx], dtype=np.float32))
        return sample

    def chunk_ids(self) -> np.ndarray | None:
        """The HDF5 chunk of each position, for :class:`~simgan.data.samplers.ChunkedBatchSampler`.

        ``None`` when any order reads equally fast: a preloaded or unchunked store.
        """
        rows = self.meta["chunk_rows"]
        return None if self.preload or rows is None else self.indices // rows

    def __getitems__(self, positions: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Samples ``positions`` (a batch: DataLoader calls this with a batch sampler's lists).

        Equal, bit for bit, to ``[self[i] for i in positions]``, but converted as one
        array and read chunk-wise (:meth:`_read_rows`): a batch drawn from a few chunks
        decompresses each chunk once instead of once per sample.
        """
        self._open()
        rows = self.indices[np.asarray(positions, dtype=np.int64)]
        pixels = self._read_rows(rows)
        if not self.preload and pixels.dtype.kind == "f":
            bad = ~np.isfinite(pixels.reshape(len(pixels), -1)).all(1)
            if bad.any():
                raise nonfinite_pixels(self.path, int(rows[np.argmax(bad)]))
        # in place on this batch's own array: the same arithmetic as __getitem__, no
        # temporaries (a 224x224 float batch is 100 MB; each new one is page-faulted in)
        image = torch.from_numpy(pixels if pixels.dtype == np.float32 else pixels.astype(np.float32))
        image.mul_(self._scale).add_(self._offset).clamp_(-1.0, 1.0)
        columns = {"image": image, "index": torch.from_numpy(rows)}
        for name in self.label_names:
            columns[name] = torch.from_numpy(np.asarray(self._labels[name][rows], dtype=np.float32))
        # default_collate stacks the samples again: a copy (in shared memory inside a
        # worker) that costs far less than building each sample on its own
        keys = tuple(columns)
        return [dict(zip(keys, sample)) for sample in zip(*(t.unbind(0) for t in columns.values()))]

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """``images[rows]`` in the given order; one slice per run of adjacent touched chunks.

        The rows are sorted and cut where the next touched chunk is not the one after the
        previous: each piece is one contiguous read that decompresses only chunks the
        batch needs, each once. A damaged chunk is named by its own samples.
        """
        if self.preload:
            return self._images[rows]
        per_chunk = self.meta["chunk_rows"] or 1
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        chunk = ordered // per_chunk
        out = np.empty((len(rows), *self.meta["shape"]), dtype=self.meta["dtype"])
        for run in np.split(np.arange(len(rows)), np.flatnonzero(np.diff(chunk) > 1) + 1):
            lo, hi = int(ordered[run[0]]), int(ordered[run[-1]]) + 1
            try:
                block = read_images(self._images, slice(lo, hi), self.path)
            except DataError:
                for k in np.unique(chunk[run]):  # find the damaged chunk: its error names its samples
                    read_images(self._images, slice(max(lo, int(k) * per_chunk), min(hi, (int(k) + 1) * per_chunk)),
                                self.path)
                raise
            picked = ordered[run] - lo
            # every row of the range wanted once (sorted, no repeats): no gather copy
            whole = hi - lo == len(run) and bool((np.diff(picked) == 1).all())
            out[order[run]] = block if whole else block[picked]
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_file=None, _images=None, _labels={}, _pid=None)
        return state
