"""HDF5 chunks of the store's ``/images``, compressed outside HDF5 so it runs in parallel.

A refined store keeps ``/images`` chunked by whole samples (:func:`simgan.data.store.chunk_rows`,
the rule of every store writer) with HDF5's shuffle + gzip (deflate level 4) filters.
(Converters and the renderer write LZF, which decodes faster, but h5py has no LZF
compressor to run outside HDF5; readers take either.) zlib runs at ~10k 36x60 images/s on
one core, slower than a GPU refines them, and HDF5 applies its filters under one lock
per process. So refining compresses each chunk itself, in the writer's threads of every
rank (``zlib`` releases the GIL), and the merge writes the finished bytes with
``write_direct_chunk``: a copy, no second compression.

The filter pipeline reproduced here is exactly h5py's ``shuffle=True,
compression="gzip"`` (shuffle first, then deflate in zlib format), so a reader cannot
tell these chunks from ones HDF5 wrote itself (tests/test_refine.py checks the bytes).
"""

from __future__ import annotations

import zlib

import numpy as np

from simgan.data.store import chunk_rows

GZIP_LEVEL = 4  # 1 is ~1.9x faster for ~4% larger files


def image_dataset_options(sample_shape: tuple[int, ...], dtype: np.dtype, level: int = GZIP_LEVEL) -> dict:
    """h5py ``create_dataset`` keywords for ``/images`` with the filters :func:`encode` matches."""
    rows = chunk_rows(sample_shape, dtype)
    return {"chunks": (rows, *sample_shape), "compression": "gzip", "compression_opts": level, "shuffle": True}


def encode(block: np.ndarray, rows: int, level: int = GZIP_LEVEL) -> bytes:
    """One HDF5 chunk of ``rows`` samples, filtered (shuffle, deflate) as HDF5 would store it.

    ``block`` may hold fewer than ``rows`` samples (the dataset's last chunk): HDF5
    chunks are always whole, so the rest is zero-filled (the dataset's fill value).
    """
    if len(block) < rows:
        full = np.zeros((rows, *block.shape[1:]), dtype=block.dtype)
        full[: len(block)] = block
        block = full
    block = np.ascontiguousarray(block)
    size = block.dtype.itemsize
    if size > 1:
        # HDF5 shuffle filter: byte j of every element, for j = 0..size-1, one after another.
        block = block.view(np.uint8).reshape(-1, size).T
    return zlib.compress(block.tobytes(), level)


def encode_chunks(images: np.ndarray, rows: int, level: int = GZIP_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """All chunks of ``images`` (its first sample starts a chunk): ``(blob, offsets)``.

    Chunk ``k`` is ``blob[offsets[k]:offsets[k + 1]]`` and holds samples
    ``k * rows .. (k + 1) * rows - 1``.
    """
    parts = [encode(images[start:start + rows], rows, level) for start in range(0, len(images), rows)]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return np.frombuffer(b"".join(parts), dtype=np.uint8), offsets
