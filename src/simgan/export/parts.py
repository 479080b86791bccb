"""The refine run's work in progress: ``<output>.parts/``, one file per finished chunk.

The input's N samples are cut into chunks of ``chunk_size`` consecutive indices; chunk
``k`` covers ``[k * chunk_size, min((k + 1) * chunk_size, N))``. Each rank refines its
own chunks and writes each finished one as ``chunk-<k>.npz`` (its indices and its
HDF5-ready compressed images, see :mod:`simgan.export.codec`), first under a
temporary name, then renamed: a chunk file either holds the whole chunk or does not
exist, so a process killed at any instant (SIGKILL included) leaves only whole chunks.

HDF5 without MPI cannot be written by several processes at once, hence files per chunk
and a merge on rank 0 (:mod:`simgan.export.merge`). ``manifest.json`` records what the
chunks were made from; ``resume=true`` reuses the finished chunks only when the input,
the checkpoint and the chunking match, and refines the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from simgan.errors import ConfigError, DataError
from simgan.reliability.disk import no_space, out_of_space, require_space

MANIFEST = "manifest.json"
_CHUNK = re.compile(r"^chunk-(\d{8})\.npz$")


def parts_dir_for(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


class Parts:
    """The chunk files of one output: plan, listing, atomic write, checked read."""

    def __init__(self, directory: str | os.PathLike, count: int, chunk_size: int):
        self.dir = Path(directory)
        self.count = int(count)
        self.chunk_size = int(chunk_size)

    @property
    def num_chunks(self) -> int:
        return -(-self.count // self.chunk_size)

    def bounds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.count)

    def path(self, chunk: int) -> Path:
        return self.dir / f"chunk-{chunk:08d}.npz"

    # ------------------------------------------------------------ state on disk
    def exists(self) -> bool:
        return self.dir.is_dir()

    def manifest(self) -> dict | None:
        try:
            return json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def done(self) -> list[int]:
        """Finished chunks (whole files only: temporaries of a killed writer do not count)."""
        if not self.dir.is_dir():
            return []
        found = (_CHUNK.match(name) for name in os.listdir(self.dir))
        return sorted(int(m.group(1)) for m in found if m and int(m.group(1)) < self.num_chunks)

    def todo(self) -> list[int]:
        done = set(self.done())
        return [k for k in range(self.num_chunks) if k not in done]

    def check_resumable(self, expected: dict) -> None:
        """Raises :class:`ConfigError` when the leftovers were made from something else."""
        found = self.manifest()
        if found is None:
            raise ConfigError(f"{self.dir}: leftovers of an interrupted refine have no readable {MANIFEST}; "
                              "pass overwrite=true to start over")
        differs = [k for k in sorted(expected) if found.get(k) != expected[k]]
        if differs:
            detail = ", ".join(f"{k}: {found.get(k)!r} then, {expected[k]!r} now" for k in differs)
            raise ConfigError(f"{self.dir}: cannot resume, the interrupted refine used a different {detail}; "
                              "pass the same settings, or overwrite=true to start over")

    def start(self, manifest: dict, fresh: bool) -> None:
        """Rank 0, before any rank reads the plan: a clean directory (``fresh``) or the old one."""
        if fresh and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tmp*"):  # a killed writer's half-written chunk
            stale.unlink(missing_ok=True)
        if fresh or self.manifest() is None:
            self._write_atomic(self.dir / MANIFEST, json.dumps(manifest, indent=1).encode())

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ chunk files
    def write(self, chunk: int, indices: np.ndarray, blob: np.ndarray, offsets: np.ndarray) -> Path:
        """Writes chunk file ``k`` atomically; a full disk is one error (finished chunks are kept)."""
        target = self.path(chunk)
        kept = f"{len(self.done())} finished chunk(s) are kept in {self.dir}"
        then = "rerun with resume=true"
        require_space(target, indices.nbytes + blob.nbytes + offsets.nbytes, f"chunk {chunk}", kept, then)
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, indices=indices, blob=blob, offsets=offsets)
            os.replace(tmp, target)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if out_of_space(err):
                raise no_space(target, f"chunk {chunk}", kept=kept, then=then) from None
            raise
        return target

    def read(self, chunk: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """``(blob, offsets)`` of a finished chunk, after checking it holds exactly its indices."""
        path = self.path(chunk)
        start, stop = self.bounds(chunk)
        if not path.is_file():
            raise DataError(f"{path}: chunk {chunk} (samples {start}..{stop - 1}) was never written; "
                            "rerun with resume=true to refine the missing chunks")
        try:
            with np.load(path) as data:
                indices, blob, offsets = data["indices"], data["blob"], data["offsets"]
        except Exception as err:
            raise DataError(f"{path}: unreadable chunk file ({type(err).__name__}: {err}); "
                            "delete it and rerun with resume=true") from None
        # Every index exactly once, in order: a sharding bug or a duplicate shows up here.
        if not np.array_equal(indices, np.arange(start, stop)):
            raise DataError(f"{path}: holds {len(indices)} samples that are not exactly {start}..{stop - 1} in order")
        if len(offsets) != -(-(stop - start) // rows) + 1:
            raise DataError(f"{path}: has {len(offsets) - 1} HDF5 chunks, expected {-(-(stop - start) // rows)}")
        return blob, offsets

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
