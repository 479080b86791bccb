"""A refine run inside the benchmark, silenced: its summary, progress bar, logs and warnings.

The benchmark prints its own tables; what :func:`simgan.export.refine.refine` prints for
a person running it would interleave with them (and, under ``--quick``, outnumber them).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

_LOGGERS = {"lightning.pytorch": logging.ERROR, "lightning.fabric": logging.ERROR, "simgan": logging.WARNING}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    try:
        for name, level in _LOGGERS.items():
            logging.getLogger(name).setLevel(level)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
