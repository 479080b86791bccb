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
"""

__version__ = "0.1.0"
