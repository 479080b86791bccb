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

The file is checked before training starts (:func:`check_resumable`, with the same
reader refine and evaluate use), so a truncated, empty, foreign or other-architecture
checkpoint is one error naming it, not a traceback from inside Lightning. The
checkpoint's folder loses the partial files of writers killed there
(:func:`simgan.reliability.partials.remove_orphans_in`): the resumed run writes into a
new run dir and would never write there again.
"""

from __future__ import annotations

import logging
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from simgan.errors import ConfigError, DataError
from simgan.reliability import partials

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


def check_resumable(ckpt_path: str | Path, model: Any) -> None:
    """Raises :class:`DataError` naming ``ckpt_path`` unless training can resume from it.

    It must be a SimGAN checkpoint (:func:`simgan.export.checkpoint.read_checkpoint`:
    readable, not empty or truncated, finite refiner weights) that Lightning wrote (loop
    and optimizer states), with finite weights and optimizer states, and its weights must
    have the names and shapes of the configured ``model``'s.
    """
    from simgan.export.checkpoint import read_checkpoint
    from simgan.reliability.finite import nonfinite_in_checkpoint

    checkpoint = read_checkpoint(ckpt_path)
    missing = [k for k in ("pytorch-lightning_version", "optimizer_states", "loops") if k not in checkpoint]
    if missing:
        raise DataError(f"{ckpt_path}: not a training checkpoint Lightning can resume (no {', '.join(missing)}: "
                        "a bare torch.save of weights?); resume from a last.ckpt written by src/train.py")
    bad = nonfinite_in_checkpoint(checkpoint)
    if bad is not None:
        raise DataError(f"{ckpt_path}: {bad} holds NaN/inf (a diverged state); resume from an earlier checkpoint")
    found, expected = checkpoint["state_dict"], model.state_dict()
    problems = [f"{k} missing" for k in expected if k not in found]
    problems += [f"{k} unexpected" for k in found if k not in expected]
    problems += [f"{k} is {list(found[k].shape)} here, {list(v.shape)} in the config" for k, v in expected.items()
                 if k in found and hasattr(found[k], "shape") and tuple(found[k].shape) != tuple(v.shape)]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{ckpt_path}: its weights do not fit the configured model ({'; '.join(problems[:3])}{more}): "
                        "it was written with other model.* settings (another architecture, history size...); resume with "
                        "that run's model.* settings")
    partials.remove_orphans_in(Path(ckpt_path).parent)


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
