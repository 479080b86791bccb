"""SIGTERM / SIGINT as inputs: recorded when they arrive, acted on where stopping is safe.

Python's default turns SIGINT into a KeyboardInterrupt raised wherever the program is:
inside a weakref callback of h5py it is printed ("Exception ignored in ...
WeakValueDictionary") and swallowed, and the work goes on; SIGTERM kills the process
on the spot. :class:`StopSignals` only records the signal; the work loop calls
:meth:`StopSignals.raise_if_stopped` between units of work (a batch of a conversion, a
chunk of a refine), which raises :class:`~simgan.errors.Interrupted`; the
entry script prints what was kept and exits with ``128 + signum``. Training's
Lightning callback (:mod:`simgan.reliability.shutdown`) shares :data:`STOP_SIGNALS`.

No torch or Lightning here: the converters import this.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable

from simgan.errors import Interrupted

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def restore_handlers(previous: dict[int, Any]) -> None:
    """Puts back the handlers in ``previous`` (signum -> handler as installed before), then empties it.

    Only the main thread may set handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in previous.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    previous.clear()


class StopSignals:
    """SIGTERM / SIGINT recorded while a block runs, acted on where the work loop asks.

    ``with StopSignals() as stop: ... stop.raise_if_stopped(message)``. A second Ctrl-C
    raises KeyboardInterrupt at once (the user wants out; atomic writers still remove
    their partial files). :meth:`active` is the innermost block's instance, for code that
    cannot be handed one (a converter's write loop). Outside the main thread it records
    nothing (signals are delivered to the main thread only). ``stopping`` and
    ``aborting`` say what the first signal and a second Ctrl-C will do (training saves a
    checkpoint first; a second Ctrl-C then aborts without one).
    """

    _stack: list["StopSignals"] = []

    def __init__(self, stopping: str = "stopping at the next safe point", aborting: str = "aborting now"):
        self.received = 0
        self.stopping, self.aborting = stopping, aborting
        self._previous: dict[int, Any] = {}

    @classmethod
    def active(cls) -> "StopSignals | None":
        return cls._stack[-1] if cls._stack else None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._on_signal)
        StopSignals._stack.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in StopSignals._stack:
            StopSignals._stack.remove(self)
        self.restore()

    def restore(self) -> None:
        restore_handlers(self._previous)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.received:
            if signum == signal.SIGINT:  # a second Ctrl-C: the user wants out now
                say(f"\nsimgan: {name} again: {self.aborting}\n")
                self.restore()
                raise KeyboardInterrupt
            return
        self.received = signum
        hint = f" (Ctrl-C again: {self.aborting})" if signum == signal.SIGINT else ""
        say(f"\nsimgan: {name} received: {self.stopping}{hint}\n")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def raise_if_stopped(self, message: str | Callable[[str], str]) -> None:
        """Raises :class:`Interrupted` once a signal came; ``message`` may take the signal's name."""
        if self.received:
            text = message(self.signal_name) if callable(message) else message
            raise Interrupted(self.received, text)


def say(text: str) -> None:
    # os.write, not print: a handler may run while the main thread is inside print()
    try:
        os.write(2, text.encode())
    except OSError:
        pass
