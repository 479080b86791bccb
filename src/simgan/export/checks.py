"""Every reason a refine cannot run, found before any work, each with one clear message.

Settings (missing paths, sizes), the checkpoint (missing, corrupt, not a SimGAN one,
weights that do not fit their architecture: :func:`~simgan.checkpoint.load_refiner`),
the input store (:func:`~simgan.data.store.check_store`, plus labels that do not align),
the pair (a channel mismatch always; an image size other than the one R was trained on
unless ``allow_size_mismatch=true``), the output (exists without ``overwrite=true``, is
the input, folder not writable), and an interrupted run's leftovers without
``resume=true`` or ``overwrite=true``. Nothing is created or deleted here (but for a
probe file in the destination folder, removed at once).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from torch import nn

from simgan.checkpoint import check_refiner_fits, load_refiner
from simgan.data.store import check_store, chunk_rows
from simgan.errors import ConfigError, DataError
from simgan.export.codec import GZIP_LEVEL
from simgan.export.parts import Parts, parts_dir_for

CHUNK_BYTES = 64 << 20


@dataclass
class Job:
    input: Path
    output: Path
    source: dict  # check_store metadata of the input
    refiner: nn.Module
    checkpoint: dict  # load_refiner info
    parts: Parts
    rows: int  # samples per HDF5 chunk of the output
    resume: bool
    level: int  # gzip level of /images

    def manifest(self) -> dict:
        """What a resumed run must share with the interrupted one."""
        return {"input": str(self.input), "count": self.source["count"], "shape": list(self.source["shape"]),
                "dtype": str(np.dtype(self.source["dtype"])), "pixel_range": list(self.source["pixel_range"]),
                "checkpoint_sha256": self.checkpoint["sha256"], "chunk_size": self.parts.chunk_size,
                "chunk_rows": self.rows}


def _required(cfg, key: str) -> str:
    value = cfg.get(key)
    if value in (None, ""):
        raise ConfigError(f"{key} is required: python src/refine.py ckpt_path=<last.ckpt> input=<store.h5> "
                          "output=<refined.h5>")
    return str(value)


def _positive(cfg, key: str, minimum: int = 1) -> int:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {minimum}")
    return value


def check_pair(source: dict, checkpoint: dict, allow_size_mismatch: bool) -> None:
    check_refiner_fits(checkpoint, source["shape"], source["path"], allow_size_mismatch)


def check_labels(source: dict) -> None:
    with h5py.File(source["path"], "r") as f:
        for name in f.get("labels", {}):
            rows = f["labels"][name].shape[0] if f["labels"][name].shape else 0
            if rows != source["count"]:
                raise DataError(f"{source['path']}: label '{name}' has {rows} rows for {source['count']} images; "
                                "labels must align with images by index")


def check_output(output: Path, input: Path, overwrite: bool) -> None:
    if output == input:
        raise ConfigError(f"output={output} is the input store; write the refined set to a new file")
    if output.is_dir():
        raise DataError(f"{output}: output is a directory; give a file name (e.g. {output / 'refined.h5'})")
    if output.exists() and not overwrite:
        raise DataError(f"{output}: already exists (pass overwrite=true to replace it once the new one is complete)")
    folder = output.parent
    while not folder.exists():  # it will be created: the nearest existing ancestor must be writable
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(f"{folder}: destination folder is not a directory")
    try:  # os.access says yes to root on a read-only mount, so try for real
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".refine-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise DataError(f"{folder}: destination folder is not writable ({err.strerror})") from None


def check_leftovers(job: Job, overwrite: bool) -> None:
    parts = job.parts
    if not parts.exists() or (overwrite and not job.resume):
        return
    if not job.resume:
        raise ConfigError(f"{parts.dir}: an interrupted refine of this output left {len(parts.done())} of "
                          f"{parts.num_chunks} chunks; pass resume=true to continue it or overwrite=true to start over")
    parts.check_resumable(job.manifest())


def preflight(cfg, rank_zero: bool = True) -> Job:
    """Checks everything; returns the job. ``rank_zero``: also check leftovers and hash the checkpoint.

    Ranks a DDP launcher re-executes (``trainer=ddp``) run this too, while rank 0 already
    writes: they skip what depends on the output folder's state.
    """
    ckpt_path = _required(cfg, "ckpt_path")
    input = Path(_required(cfg, "input")).expanduser().resolve()
    output = Path(_required(cfg, "output")).expanduser().resolve()
    batch_size = _positive(cfg, "batch_size")
    chunk_size = _positive(cfg, "chunk_size")
    if cfg.get("num_workers") is not None:
        _positive(cfg, "num_workers", minimum=0)
    level = cfg.get("compression_level", GZIP_LEVEL)
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 9:
        raise ConfigError(f"compression_level={level!r}: must be a gzip level, 1 (fastest) to 9 (smallest)")
    overwrite, resume = bool(cfg.get("overwrite")), bool(cfg.get("resume"))

    refiner, checkpoint = load_refiner(ckpt_path, hash_file=rank_zero)
    source = check_store(input)
    check_labels(source)
    check_pair(source, checkpoint, bool(cfg.get("allow_size_mismatch")))
    if rank_zero:
        check_output(output, input, overwrite)

    rows = chunk_rows(source["shape"], source["dtype"])
    # A rank holds about three chunks (one filling, two compressing): cap a chunk at
    # CHUNK_BYTES of output. Chunks start on HDF5 chunk boundaries (the merge copies
    # compressed HDF5 chunks) and hold at least one batch.
    sample_bytes = int(np.prod(source["shape"])) * np.dtype(source["dtype"]).itemsize
    chunk_size = min(chunk_size, max(1, CHUNK_BYTES // sample_bytes))
    chunk_size = -(-max(chunk_size, batch_size) // rows) * rows
    parts = Parts(parts_dir_for(output), source["count"], chunk_size)
    job = Job(input, output, source, refiner, checkpoint, parts, rows, resume, level)
    if rank_zero:
        previous = parts.manifest() if resume or not overwrite else None
        if previous and isinstance(previous.get("chunk_size"), int) and previous["chunk_size"] > 0:
            # Leftovers are counted, and resumed, in the interrupted run's chunks, whatever
            # chunk_size says now.
            job.parts = Parts(parts.dir, source["count"], previous["chunk_size"])
        check_leftovers(job, overwrite)
    return job
