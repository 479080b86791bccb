"""What every entry script does around its task: clear errors, clean W&B shutdown.

A :class:`~simgan.errors.SimganError` (bad setting, bad file, a diverged run) is printed
as one line, ``error: <message>``, and the process exits with status 2, even when
Hydra's ``instantiate`` has wrapped it in its own exception. A run stopped cleanly by a
signal (:class:`~simgan.errors.Interrupted`, also a SimganError) prints how to resume
and exits with ``128 + signum`` (143 for SIGTERM, 130 for SIGINT). Whatever happens, an
open W&B run is finished, so multirun jobs never merge into one run.

An error raised in a DataLoader worker reaches the main process re-raised with the
worker's traceback inside its message; only its last line (the error itself) is shown.
A process whose HDF5 write ran out of space must not run the interpreter's teardown
(HDF5 would segfault closing the broken file): it ends with ``os._exit``.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable

from simgan.errors import Interrupted, SimganError


def user_error(err: BaseException) -> SimganError | None:
    """The SimganError behind ``err`` (itself or a cause), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SimganError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def one_line(err: BaseException) -> str:
    """The error's message on one line (a worker's re-raised traceback cut to its last line)."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        name, sep, rest = last.partition(": ")
        text = rest if sep and name.rsplit(".", 1)[-1] == type(err).__name__ else last
    return " ".join(text.split())


def exit_now_if_hdf5_is_broken(code: int) -> None:
    """``os._exit(code)`` when a store write hit a full disk inside HDF5 (see module docstring)."""
    hdf5 = sys.modules.get("simgan.reliability.hdf5_full")  # not imported: no store was written
    if hdf5 is not None and hdf5.abandoned_writes():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def finish_wandb() -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def report(err: SimganError) -> int:
    """Prints ``err`` for the user (a stop's message as is, an error as ``error: ...``); its exit status."""
    if isinstance(err, Interrupted):
        if err.message:
            print(err.message, file=sys.stderr, flush=True)
    else:
        print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
    return err.exit_code


def task_wrapper(task: Callable) -> Callable:
    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as err:
            cause = user_error(err)
            if cause is None:
                raise
            code = report(cause)
            if "simgan.reliability.hdf5_full" in sys.modules:  # os._exit skips the finally below
                finish_wandb()
                exit_now_if_hdf5_is_broken(code)
            sys.exit(code)
        finally:
            finish_wandb()

    return wrapped
