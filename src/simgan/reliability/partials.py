"""Staging files of atomic writes: ``.<name>.<pid>.partial`` next to their target.

Every file that must never be seen half-written (a checkpoint, a store, a refined
store) is written under this name and renamed onto its target when complete. The pid in
the name does two things:

- two processes writing the same target never share (and so never empty or corrupt)
  one staging file; a writer can tell that another live process is writing the same
  target and refuse, instead of racing it;
- a writer killed mid-write (SIGKILL, OOM) cannot clean up after itself, so its file
  (as large as what it was writing) would stay for good: the next writer of that target,
  or of any target in that folder (:func:`remove_orphans_in`), deletes the files whose
  process is gone. A live writer's file is never touched.

A pid reused by an unrelated process after a crash makes its file look live until that
process ends; the refusal message names the file so a user can delete it.
"""

from __future__ import annotations

import os
from pathlib import Path

SUFFIX = ".partial"


def partial_path(target: str | os.PathLike, pid: int | None = None) -> Path:
    """Where this process (or ``pid``) stages its write of ``target``."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid() if pid is None else pid}{SUFFIX}")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def staged(target: str | os.PathLike) -> list[tuple[Path, int]]:
    """Every staging file of ``target`` with its writer's pid (this process's included)."""
    target = Path(target)
    prefix = f".{target.name}."
    found = []
    for candidate in target.parent.glob(f"{prefix}*{SUFFIX}") if target.parent.is_dir() else ():
        pid = candidate.name[len(prefix):-len(SUFFIX)]
        if pid.isdigit():
            found.append((candidate, int(pid)))
    return found


def other_live_writer(target: str | os.PathLike) -> tuple[Path, int] | None:
    """The staging file and pid of another running process writing ``target``, if any."""
    return next(((p, pid) for p, pid in staged(target) if pid != os.getpid() and process_exists(pid)), None)


def remove_orphans(target: str | os.PathLike) -> list[Path]:
    """Deletes the staging files of ``target`` whose writer is gone; returns them."""
    removed = []
    for candidate, pid in staged(target):
        if pid != os.getpid() and not process_exists(pid):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def remove_orphans_in(directory: str | os.PathLike) -> list[Path]:
    """Deletes every dead writer's staging file in ``directory`` (whatever its target)."""
    directory = Path(directory)
    removed = []
    for candidate in directory.glob(f".*{SUFFIX}") if directory.is_dir() else ():
        stem = candidate.name[1:-len(SUFFIX)]
        name, _, pid = stem.rpartition(".")
        if name and pid.isdigit():
            removed += remove_orphans(directory / name)
    return removed
