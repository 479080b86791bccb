"""The training run, as a straight sequence: config -> data, model, callbacks, loggers, trainer; fit.

Kept out of ``src/train.py`` so tests and other entry points call the same function
with a composed config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from simgan.validate import check_model_fits_data

log = logging.getLogger("simgan")


def _instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(c) for c in (group or {}).values() if isinstance(c, DictConfig) and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _recursive_=True)
    model = instantiate(cfg.model, _recursive_=False)
    check_model_fits_data(model, datamodule)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                          max_steps=model.schedule.total_steps)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    log.info("data: %s", datamodule.describe())
    log.info("schedule: %s", {k: v for k, v in model.schedule.state_dict().items() if not k.startswith("cycle")})
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        print(_summary(trainer, metrics), flush=True)
    return metrics


def _summary(trainer: L.Trainer, metrics: dict[str, float]) -> str:
    lines = ["", f"Finished {trainer.global_step} steps. Outputs:"]
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.last_model_path:
        lines.append(f"  checkpoint:  {ckpt.last_model_path}")
    for cb in trainer.callbacks:
        if getattr(cb, "last_path", None):
            lines.append(f"  image grids: {Path(cb.last_path).parent}/ (latest: {Path(cb.last_path).name})")
    for logger in trainer.loggers:
        name = type(logger).__name__
        if name == "CSVLogger":
            lines.append(f"  metrics:     {Path(logger.log_dir) / 'metrics.csv'}")
        elif name == "WandbLogger":
            run_dir = getattr(logger.experiment, "dir", None) or logger.save_dir
            lines.append(f"  W&B run:     {Path(run_dir).parent} (offline: `wandb sync` it to upload)")
    shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("val/")}
    if shown:
        lines.append(f"  last validation: {shown}")
    return "\n".join(lines)
