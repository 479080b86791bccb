"""simgan: SimGAN (Shrivastava et al., CVPR 2017) as a Lightning + Hydra platform.

A refiner R makes labeled synthetic images look real using unlabeled real images and a
local (per-patch) discriminator D, while a self-regularization loss keeps the labels
valid (paper Sec. 2). Sub-packages:

- ``simgan.models``: the refiner and the local discriminator (plain ``nn.Module`` objects).
- ``simgan.losses``: local adversarial loss (Eq. 2-4) and self-regularization (Eq. 4).
- ``simgan.regularizers``: the feature maps psi for self-regularization.
- ``simgan.history``: the history buffer of refined images (Sec. 2.3).
- ``simgan.module``: the LightningModule with the three-phase schedule (Algorithm 1).
- ``simgan.data``: the HDF5 store, the DataModule and the simulators.
- ``simgan.api``: the public Python API, re-exported here: :func:`load_refiner`,
  :func:`refine` (arrays in, the same kind out) and :class:`RefinedDataset`.

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
