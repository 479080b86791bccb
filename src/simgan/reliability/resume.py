"""Which checkpoint to resume from (``ckpt_path=last``), and what to tell a user who must resume.

``ckpt_path=<file>`` resumes from that file. ``ckpt_path=last`` resumes from the newest
(by modification time) of the task's previous runs' checkpoints,
``<paths.log_dir>/<task_name>/runs/*/checkpoints/last.ckpt``, counting Lightning's SLURM
checkpoints ``runs/*/hpc_ckpt_<n>.ckpt`` too; with none there, training starts from
scratch with a warning, so one command line serves a job's first start and every
requeue. Lightning's own ``ckpt_path="last"`` would look only in this run's new, empty
Hydra directory. This run's own directory counts too: a SLURM job that pins
``hydra.run.dir`` per job id (``scripts/slurm_train.sbatch``) finds its own checkpoints
after a requeue.

The file itself is checked before training starts by
:func:`simgan.checkpoint.check_resumable`, so a truncated, empty, foreign or
other-architecture checkpoint is one error naming it, not a traceback from inside
Lightning.
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from simgan.errors import ConfigError

log = logging.getLogger("simgan")


def find_last_checkpoint(log_dir: str | Path, task_name: str) -> Path | None:
    runs = Path(log_dir) / task_name / "runs"
    candidates = [*runs.glob("*/checkpoints/last.ckpt"), *runs.glob("*/hpc_ckpt_*.ckpt")]
    candidates = [c for c in candidates if c.is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.stat().st_mtime_ns, str(c)))


def resolve_ckpt_path(value: str | None, log_dir: str | Path, task_name: str) -> str | None:
    """The checkpoint file ``ckpt_path`` names, or None to start from scratch."""
    if value is None or str(value) == "":
        return None
    if str(value) == "last":
        found = find_last_checkpoint(log_dir, task_name)
        if found is None:
            log.warning("ckpt_path=last: no checkpoint under %s/%s/runs/*/checkpoints/; starting from scratch",
                        log_dir, task_name)
            return None
        log.info("ckpt_path=last: resuming from %s", found)
        return str(found)
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={value}: checkpoint file not found (use ckpt_path=last for the newest "
                          f"last.ckpt under {log_dir}/{task_name}/runs/)")
    return str(path)


def resume_command(ckpt: str | Path | None = None, script: str = "train.py", replace: dict | None = None) -> str:
    """The command line of this run (``script`` under ``src/``) with some settings replaced.

    By default ``ckpt_path`` points at ``ckpt`` (training's resume); ``replace`` gives
    other ``key: value`` pairs to set instead (refine's ``resume=true``).
    """
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            overrides = list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):
        overrides = []
    replace = dict(replace) if replace is not None else {"ckpt_path": ckpt}
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in replace]
    argv0 = sys.argv[0] if sys.argv and Path(sys.argv[0]).name == script else f"src/{script}"
    added = [f"{k}={v}" for k, v in replace.items()]
    return " ".join(["python", shlex.quote(argv0), *map(shlex.quote, kept), *map(shlex.quote, added)])


def interrupted_message(trainer: Any, shutdown: Any) -> str:
    """What a run stopped by a signal prints: where its checkpoint is and how to resume."""
    name = signal.Signals(shutdown.stopped_by).name
    runs = Path(trainer.default_root_dir).parent
    return "\n".join([
        "",
        f"Training stopped by {name} after step {trainer.global_step} of {trainer.max_steps}.",
        f"  checkpoint: {shutdown.checkpoint_path}",
        "Resume with:",
        f"  {resume_command(shutdown.checkpoint_path)}",
        f"  (or ckpt_path=last: the newest last.ckpt under {runs}/)",
    ])


def last_good_checkpoint(trainer: Any, resumed_from: str | None) -> str:
    """The newest checkpoint a failed run leaves (never a poisoned one: the writer refuses those)."""
    ckpt = trainer.checkpoint_callback
    last = getattr(ckpt, "last_model_path", "") if ckpt is not None else ""
    if last and Path(last).is_file():
        return last
    return resumed_from or "none (the run failed before its first checkpoint)"
