"""What every entry script does around its task: clear errors, clean W&B shutdown.

A :class:`~simgan.errors.SimganError` (bad setting, bad file, a diverged run) is printed
as one line, ``error: <message>``, and the process exits with status 2, even when
Hydra's ``instantiate`` has wrapped it in its own exception. A run stopped cleanly by a
signal (:class:`~simgan.reliability.errors.TrainingInterrupted`) prints how to resume
and exits with ``128 + signum`` (143 for SIGTERM, 130 for SIGINT). Whatever happens, an
open W&B run is finished, so multirun jobs never merge into one run (DESIGN.md pitfalls).
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

from simgan.errors import SimganError
from simgan.reliability.errors import TrainingInterrupted


def user_error(err: BaseException) -> SimganError | None:
    """The SimganError behind ``err`` (itself or a cause), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SimganError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def finish_wandb() -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def task_wrapper(task: Callable) -> Callable:
    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except TrainingInterrupted as stop:
            if stop.message:
                print(stop.message, file=sys.stderr, flush=True)
            sys.exit(stop.exit_code)
        except Exception as err:
            cause = user_error(err)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr, flush=True)
            sys.exit(2)
        finally:
            finish_wandb()

    return wrapped
