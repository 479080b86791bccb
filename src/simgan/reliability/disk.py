"""A full disk is an input too: one clear error naming the path, never a crash mid-write.

Two parts, used by every writer of large files (stores, chunk files, checkpoints):

- :func:`require_space` before each large write: the free space must hold the bytes
  about to be written (uncompressed: an upper bound) plus :data:`MARGIN_BYTES` for the
  metadata a file still writes when it is closed. Checking first matters for HDF5: once
  a write of HDF5 has failed with ENOSPC the library is left in a state where closing
  the file, or the interpreter's exit, segfaults; a write refused before it starts
  closes cleanly.
- :func:`out_of_space` turns what a write that ran out of space anyway raised (another
  process filled the disk between check and write) into the same error:
  ``OSError`` ENOSPC / EDQUOT, h5py's messages that carry ``errno = 28``, and torch's
  ``inline_container.cc`` "unexpected pos" of a short write.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from simgan.errors import DiskFullError

MARGIN_BYTES = 1 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes available to this user on the filesystem of ``path`` (its nearest existing folder)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def no_space(path: str | os.PathLike, what: str, needed: int | None = None, kept: str = "",
             then: str = "run again") -> DiskFullError:
    """The one-line error for ``path`` on a full filesystem: what was kept, what to do."""
    free = free_bytes(path)
    detail = f"{_mib(free)} free" if free is not None else "the disk is full"
    if needed is not None:
        detail += f", the next write needs about {_mib(needed + MARGIN_BYTES)}"
    return DiskFullError(f"{path}: no space left on device while writing {what} ({detail}); the partial file was "
                     f"removed{'; ' + kept if kept else ''}. Free some space and {then}")


def require_space(path: str | os.PathLike, nbytes: int, what: str, kept: str = "", then: str = "run again") -> None:
    """Raises :func:`no_space`'s error unless ``nbytes`` (+ margin) fit where ``path`` is written."""
    free = free_bytes(path)
    if free is not None and free < int(nbytes) + MARGIN_BYTES:
        raise no_space(path, what, int(nbytes), kept, then)


def out_of_space(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a write that found the disk full."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _NO_SPACE:
            return True
        text = str(err)
        if "No space left on device" in text or "errno = 28" in text or "Disk quota exceeded" in text:
            return True
        err = err.__cause__ or err.__context__
    return False


def short_torch_write(err: BaseException) -> bool:
    """torch.save's error for a write the file took only part of (how it reports a full disk)."""
    return isinstance(err, RuntimeError) and "inline_container.cc" in str(err) and "unexpected pos" in str(err)
