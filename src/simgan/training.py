"""The training run, as a straight sequence: config -> data, model, callbacks, loggers, trainer; fit.

Kept out of ``src/train.py`` so tests and other entry points call the same function
with a composed config.

Around the Trainer (docs/reliability.md): the settings' types and ranges are checked
before anything is built; ``ckpt_path=last`` is resolved to the newest previous
checkpoint, which is checked to fit the model; an online W&B logger that cannot start
goes offline first; the Trainer gets an atomic, NaN-refusing CheckpointIO, and ``use_distributed_sampler=False``
because the DataModule shards its own streams; a run stopped by a signal raises
:class:`TrainingInterrupted` with the command that resumes it, and a diverged run's
:class:`NonFiniteError` names the last good checkpoint.

Scaling out (docs/scaling.md): a DDP run whose worker processes Lightning starts by
re-executing the command line is refused inside a Hydra multirun (``-m``), where each
worker would re-run the whole sweep; only rank zero prints the summary.
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from simgan.checkpoint import check_resumable, step_description
from simgan.errors import ConfigError, NonFiniteError, TrainingInterrupted
from simgan.reliability.checkpoint_io import trainer_plugins
from simgan.reliability.resume import interrupted_message, last_good_checkpoint, resolve_ckpt_path
from simgan.reliability.shutdown import GracefulShutdown
from simgan.reliability.wandb_guard import go_offline_if_unusable
from simgan.utils.heap import keep_freed_memory
from simgan.utils.instantiators import instantiate_group
from simgan.validate import check_model_fits_data, check_settings, warn_if_precision_is_slow_here

log = logging.getLogger("simgan")


# Our checkpoints are written between steps (the post-step state is what a resume needs),
# so Lightning's advice to stash pre-optimizer-step weights does not apply.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
# torch deprecates DDP's broadcast_buffers but its replacement (forward_sync_buffers=False)
# still copies rank zero's buffers to every rank at start-up, which would overwrite the
# per-rank history buffers a resumed run restores: conf/trainer/ddp.yaml keeps the old flag.
warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)


def train(cfg: DictConfig) -> dict[str, float]:
    check_settings(cfg)
    keep_freed_memory()  # activations are not page-faulted in again at every step
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _recursive_=True)
    model = instantiate(cfg.model, _recursive_=False)
    check_model_fits_data(model, datamodule)
    paths = cfg.get("paths") or {}
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), paths.get("log_dir", "logs"), cfg.get("task_name", "train"))
    if ckpt_path is not None:
        check_resumable(ckpt_path, model)
    callbacks = instantiate_group(cfg.get("callbacks"))
    go_offline_if_unusable(cfg.get("logger"))
    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                          max_steps=model.schedule.total_steps, plugins=trainer_plugins(cfg.trainer, step_description),
                          use_distributed_sampler=not getattr(datamodule, "shards_itself", False))
    _refuse_relaunch_inside_sweep(trainer)
    warn_if_precision_is_slow_here(trainer.strategy.root_device.type, str(cfg.trainer.get("precision")))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    log.info("data: %s", datamodule.describe())
    log.info("schedule: %s", {k: v for k, v in model.schedule.state_dict().items() if not k.startswith("cycle")})
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except NonFiniteError as err:
        raise NonFiniteError(f"{err}; last good checkpoint: {last_good_checkpoint(trainer, ckpt_path)}") from None
    except SIGTERMException:  # Lightning's own handler, when SIGTERM came before training started
        raise TrainingInterrupted(signal.SIGTERM, "Stopped by SIGTERM before training started; no checkpoint "
                                  "was written. Run the same command again.") from None
    shutdown = next((cb for cb in trainer.callbacks if isinstance(cb, GracefulShutdown)), None)
    if shutdown is not None and shutdown.stopped_by:
        message = interrupted_message(trainer, shutdown) if trainer.is_global_zero else ""
        raise TrainingInterrupted(shutdown.stopped_by, message)
    _save_final_checkpoint(trainer)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        print(_summary(trainer, metrics), flush=True)
    return metrics


def _save_final_checkpoint(trainer: L.Trainer) -> None:
    """Writes last.ckpt at the final step when the periodic checkpoint missed it.

    ModelCheckpoint saves every ``every_n_train_steps``; when the schedule's total is not
    a multiple of it, last.ckpt would hold an earlier refiner than the one that finished.
    Every rank calls this (saving is collective); only rank zero writes.
    """
    ckpt = trainer.checkpoint_callback
    if ckpt is None or ckpt.dirpath is None or not ckpt.save_last:
        return
    path = os.path.join(ckpt.dirpath, "last.ckpt")
    if getattr(trainer.lightning_module, "last_saved_step", None) == trainer.global_step and os.path.exists(path):
        return
    trainer.save_checkpoint(path)
    ckpt.last_model_path = path


def _refuse_relaunch_inside_sweep(trainer: L.Trainer) -> None:
    """Raises ConfigError for a Lightning-launched DDP run inside a Hydra multirun.

    Lightning starts ranks 1.. of a one-machine DDP run by running ``sys.argv`` again with
    ``hydra.run.dir`` pinned; under ``-m`` that command is the whole sweep, so every job
    would start another sweep. Processes started by SLURM or torchrun are not affected.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    if (not isinstance(launcher, _SubprocessScriptLauncher) or launcher.num_processes < 2
            or launcher.cluster_environment.creates_processes_externally):
        return  # no worker processes of Lightning's own (one device, or SLURM / torchrun started them)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(
            f"a {launcher.num_processes}-process DDP run cannot be a job of a -m sweep on one machine (each "
            "process Lightning starts would re-run the whole sweep): sweep with one device per job "
            "(trainer=cpu or trainer=gpu), or launch each job through SLURM (hydra/launcher=slurm), "
            "see docs/scaling.md")


def _summary(trainer: L.Trainer, metrics: dict[str, float]) -> str:
    lines = ["", f"Finished {trainer.global_step} steps. Outputs:"]
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.last_model_path:
        lines.append(f"  checkpoint:  {ckpt.last_model_path}")
    for cb in trainer.callbacks:
        if getattr(cb, "last_path", None):
            lines.append(f"  image grids: {Path(cb.last_path).parent}/ (latest: {Path(cb.last_path).name})")
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            lines.append(f"  metrics:     {Path(logger.log_dir) / 'metrics.csv'}")
        elif isinstance(logger, WandbLogger):
            run_dir = getattr(logger.experiment, "dir", None) or logger.save_dir
            lines.append(f"  W&B run:     {Path(run_dir).parent} (offline: `wandb sync` it to upload)")
    shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("val/")}
    if shown:
        lines.append(f"  last validation: {shown}")
    return "\n".join(lines)
