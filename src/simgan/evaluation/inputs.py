"""What an evaluation reads: the refiner from a checkpoint, the data it was trained on, images.

The data config comes from the command line (``data=digits``) when one is given, else from
the training run that wrote the checkpoint (``<run>/.hydra/config.yaml``, found two levels
above ``<run>/checkpoints/last.ckpt``). The training run's own config is preferred because
it reproduces the exact train/validation split (same ``seed``, same ``n``), so "held-out"
below really means images the refiner was never trained on.

Image sets, each a plain tensor in [-1, 1] read once:

- ``synthetic``: the first ``n_images`` of the synthetic validation split, topped up from
  the training split when the validation split is smaller (:mod:`simgan.data.subsets`);
- ``fit``: the next synthetic images (training split, disjoint from ``synthetic``), for the
  models an evaluation trains (label estimator, downstream classifier);
- ``real``: the first ``n_images`` of the real validation split, topped up from training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from tqdm.auto import tqdm

from simgan.data.subsets import first_images
from simgan.errors import ConfigError

log = logging.getLogger("simgan")


def run_config_path(ckpt_path: str | Path) -> Path:
    """``<run>/.hydra/config.yaml`` for ``<run>/checkpoints/<name>.ckpt``."""
    return Path(ckpt_path).resolve().parent.parent / ".hydra" / "config.yaml"


def data_config(cfg: DictConfig) -> tuple[DictConfig, str]:
    """The ``data`` node to evaluate on (resolved) and where it came from."""
    if cfg.get("data") is not None:
        return cfg.data, "the command line / conf/evaluate.yaml (data=...)"
    saved = run_config_path(cfg.ckpt_path)
    if not saved.is_file():
        raise ConfigError(f"no data config: {saved} does not exist (a checkpoint not written by src/train.py?); "
                          "name the data it was trained on, e.g. data=digits or data=eyes")
    run_cfg = OmegaConf.load(saved)
    if run_cfg.get("data") is None:
        raise ConfigError(f"{saved}: has no 'data' node; name the data, e.g. data=digits")
    # Resolved against the run's own config: its seed decides the validation split.
    resolved = OmegaConf.create(OmegaConf.to_container(run_cfg.data, resolve=True))
    return resolved, str(saved)


@dataclass
class ImageSets:
    synthetic: Tensor
    synthetic_labels: dict[str, Tensor]
    fit: Tensor
    fit_labels: dict[str, Tensor]
    real: Tensor
    notes: list[str] = field(default_factory=list)


def image_sets(datamodule, n_images: int, n_fit: int) -> ImageSets:
    """The synthetic, fit and real sets (:func:`simgan.data.subsets.first_images`)."""
    splits = datamodule.splits
    notes = []
    synthetic, synthetic_labels = first_images(splits, "synthetic", n_images)
    if len(splits["synthetic_val"]) < n_images:
        notes.append(f"synthetic validation split has {len(splits['synthetic_val'])} images: "
                     f"topped up to {len(synthetic)} from the training split")
    fit, fit_labels = first_images(splits, "synthetic", n_fit, start=len(synthetic))
    real, _ = first_images(splits, "real", n_images)
    if len(fit) < 2:
        n_synthetic = len(splits["synthetic_val"]) + len(splits["synthetic_train"])
        raise ConfigError(f"n_images={n_images} uses up all {n_synthetic} synthetic images: nothing left "
                          "to fit the label estimator / downstream models on; lower n_images")
    synthetic_labels.pop("index", None)
    fit_labels.pop("index", None)
    return ImageSets(synthetic, synthetic_labels, fit, fit_labels, real, notes)


@torch.no_grad()
def refine_images(refiner: nn.Module, x: Tensor, batch_size: int = 256, device: str | torch.device = "cpu",
                  desc: str = "refine") -> Tensor:
    """R(x) in batches, on ``device``, back on the CPU."""
    refiner = refiner.to(device).eval()
    out = [refiner(x[i:i + batch_size].to(device)).float().cpu()
           for i in tqdm(range(0, len(x), batch_size), desc=desc, leave=False, mininterval=0.5)]
    return torch.cat(out) if out else x.clone()


def build_datamodule(data_cfg: DictConfig):
    datamodule = instantiate(data_cfg, _recursive_=True)
    datamodule.prepare_data()
    datamodule.setup("validate")
    log.info("data: %s", datamodule.describe())
    return datamodule
