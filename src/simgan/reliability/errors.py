"""The two ways a run stops before its end (diverged, interrupted), as exceptions the entry script handles."""

from __future__ import annotations

import signal

from simgan.errors import SimganError


class NonFiniteError(SimganError):
    """A loss, refined batch, input or checkpointed tensor is NaN/inf: the run diverged.

    A :class:`SimganError`, so the entry script prints it as one ``error: ...`` line
    and exits with status 2; nothing poisoned is written.
    """


class Interrupted(Exception):
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
