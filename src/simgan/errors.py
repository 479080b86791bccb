"""Every way a run of the project stops early on purpose, as one exception family.

Entry scripts (``src/train.py`` and friends, wrapped by :func:`simgan.utils.cli.task_wrapper`)
catch :class:`SimganError`, print its message on one line and exit with
:attr:`SimganError.exit_code`: status 2 for a user error (bad setting, bad file, a
diverged run), ``128 + signum`` for a run a signal stopped cleanly. So bad input never
ends in a traceback from deep inside torch or h5py.

- :class:`ConfigError`: a setting has a value the code cannot use (names the setting).
- :class:`DataError`: a file or folder is missing, malformed or inconsistent (names the
  path); :class:`DiskFullError` when a write found no space left.
- :class:`NonFiniteError`: a loss, refined batch, input or checkpointed tensor is
  NaN/inf; nothing poisoned is written.
- :class:`Interrupted` (and :class:`TrainingInterrupted`): a signal stopped a run at a
  safe point; its message says what was kept and how to go on.
"""

from __future__ import annotations

import signal


class SimganError(Exception):
    """Base class for every user-facing error of the project."""

    @property
    def exit_code(self) -> int:
        return 2


class ConfigError(SimganError):
    """A setting has a value the code cannot use (names the setting)."""


class DataError(SimganError):
    """A data file or folder is missing, malformed or inconsistent (names the path)."""


class DiskFullError(DataError):
    """A write found (or would have found) no space left on the device."""


class NonFiniteError(SimganError):
    """A loss, refined batch, input or checkpointed tensor is NaN/inf: the run diverged."""


class Interrupted(SimganError):
    """A signal stopped a run (training, refine, a conversion) cleanly at a safe point.

    The entry script prints :attr:`message` (what was kept, how to go on) and exits with
    ``128 + signum``, the shell's convention for "ended by that signal".
    """

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = int(signum)
        self.message = message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class TrainingInterrupted(Interrupted):
    """A signal stopped training cleanly after saving a checkpoint."""
