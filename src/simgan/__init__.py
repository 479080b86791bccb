"""simgan: SimGAN (Shrivastava et al., CVPR 2017) as a Lightning + Hydra platform.

A refiner R makes labeled synthetic images look real using unlabeled real images and a
local (per-patch) discriminator D, while a self-regularization loss keeps the labels
valid (paper Sec. 2). The core, each concept in one module:

- ``simgan.models``: the refiner, its noise input and the local discriminator (plain
  ``nn.Module`` objects).
- ``simgan.losses``: the adversarial loss families (Eq. 2-3 and later GAN losses), R1 and
  self-regularization (Eq. 4). A new loss family is an entry here.
- ``simgan.regularizers``: the feature maps psi for self-regularization.
- ``simgan.history``: the history buffer of refined images (Sec. 2.3).
- ``simgan.schedule``: the three phases (``Phase``) and K_g:K_d cycles (Algorithm 1).
- ``simgan.module``: the LightningModule, manual optimization, one step per batch.
- ``simgan.augment``, ``simgan.ema``: DiffAugment for D's inputs; R's weight average.
- ``simgan.checkpoint``: what a checkpoint holds beyond Lightning's, and every reader
  (``load_refiner``, resume and refiner-fit checks).
- ``simgan.distributed``: step metrics averaged over DDP ranks.
- ``simgan.errors``: the one family of errors a user can fix, and of clean stops.
- ``simgan.validate``, ``simgan.training``: settings checked before work; config -> fit.

Around it, each on one side of the core:

- ``simgan.data``: the HDF5 store, sources, the DataModule and its samplers, simulators,
  converters (``python -m simgan.data.convert``), fixed evaluation subsets. A new dataset
  is a source or simulator here plus a ``conf/data/*.yaml``.
- ``simgan.metrics``: the one implementation of every metric (C2ST, KID, label shift,
  downstream task models, border step, eye geometry). A new metric is a module here.
- ``simgan.evaluation``: ``src/evaluate.py``'s run: inputs, summary, plots, report.
- ``simgan.callbacks``: the training-time image grids, realism metrics and progress display.
- ``simgan.export``: ``src/refine.py``'s refined copy of a store; portable TorchScript/ONNX.
- ``simgan.bench``: every benchmark (``python -m simgan.bench``).
- ``simgan.reliability``: below the core: atomic writes, disk-full, signals, resume
  paths, the NaN guard, W&B offline guard; it imports nothing of the core.
- ``simgan.utils``: entry-script wrapper, config-group instantiation, small helpers.
- ``simgan.api``: the public Python API, re-exported here: :func:`load_refiner`,
  :func:`refine` (arrays in, the same kind out) and :class:`RefinedDataset`;
  ``simgan.cli_entry``: the installed ``simgan-*`` commands.

The re-exports are resolved on first use, so ``import simgan`` stays cheap (no torch,
Lightning or Hydra until a name is touched).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load_refiner", "refine", "RefinedDataset", "__version__"]
_API = ("load_refiner", "refine", "RefinedDataset")


def __getattr__(name: str):
    if name in _API:
        from simgan import api

        return getattr(api, name)
    raise AttributeError(f"module 'simgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
