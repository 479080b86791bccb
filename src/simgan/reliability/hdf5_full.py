"""HDF5 after a write met a full disk: keep it from crashing the process or flooding stderr.

Once an HDF5 write has failed with ENOSPC, the library cannot close that file any more:
closing it, or collecting its handles at the interpreter's exit, segfaults (a conversion
on a full disk ended with exit 139). So the store writer keeps the broken handles
referenced (:func:`keep_broken`) and the entry scripts end the process with
``os._exit`` after printing the one error line (:func:`simgan.utils.cli.exit_now_if_hdf5_is_broken`).
:class:`QuietOutOfSpace` drops h5py's repeated reports of that same ENOSPC.
The space check before each write (:mod:`simgan.reliability.disk`) makes all this the
rare case: a disk that another process fills between the check and the write.
"""

from __future__ import annotations

import sys

from simgan.reliability.disk import out_of_space

_ABANDONED: list = []


def keep_broken(*handles) -> None:
    """Keeps the h5py handles of a write that met ENOSPC referenced until the process ends."""
    _ABANDONED.extend(h for h in handles if h is not None)


def abandoned_writes() -> bool:
    """Whether an HDF5 write of this process ran out of space (the process must end with os._exit)."""
    return bool(_ABANDONED)


class QuietOutOfSpace:
    """While HDF5 writes: drops the reports of h5py handles that fail to flush to a full disk.

    HDF5 objects freed while a write fails with ENOSPC (h5py's temporaries, then every
    handle of the file) each print the same ENOSPC from their deallocator (through
    ``sys.excepthook`` and ``sys.unraisablehook``): a dozen tracebacks for one error,
    which the writer reports once, naming the store. Only out-of-space errors, and only
    inside the block (and for the handles of an abandoned write), are dropped.
    """

    depth = 0

    def __enter__(self) -> None:
        if not getattr(sys.excepthook, "_simgan_quiet", False):
            sys.excepthook = _quiet(sys.excepthook, lambda value: QuietOutOfSpace.depth > 0 and out_of_space(value))
            sys.unraisablehook = _quiet(sys.unraisablehook, lambda u: u.exc_value is not None
                                        and out_of_space(u.exc_value) and (QuietOutOfSpace.depth > 0 or _ABANDONED),
                                        unraisable=True)
        QuietOutOfSpace.depth += 1

    def __exit__(self, *exc) -> None:
        QuietOutOfSpace.depth -= 1


def _quiet(previous, drop, unraisable: bool = False):
    if unraisable:
        def hook(u) -> None:
            if not drop(u):
                previous(u)
    else:
        def hook(exc_type, value, tb) -> None:
            if not drop(value):
                previous(exc_type, value, tb)
    hook._simgan_quiet = True
    return hook
