"""Feature maps psi for the self-regularization loss (paper Eq. 4).

The refiner loss keeps ``lambda * || psi(R(x)) - psi(x) ||_1`` small, so psi decides
*what* of the synthetic image the refiner must preserve (the label) and what it may
change to look real. Pick one with ``regularizer=<name>`` (``conf/regularizer/``);
the weight lambda is ``model.lambda_reg``, not part of psi.

Maps (config name -> class, psi of a ``(B, 1, 36, 60)`` eye image):

- ``identity`` -> :class:`~.identity.Identity`: the pixels, ``(B, 1, 36, 60)``.
  Paper Sec. 3.1 (gaze).
- ``rgb_mean`` -> :class:`~.channel_mean.ChannelMean`: mean over colour channels,
  ``(B, 1, 36, 60)``. Paper Sec. 3.3 (colour images); identity on grayscale.
- ``vgg`` -> :class:`~.vgg.VGGFeatures`: ImageNet VGG16 after ``conv3_3``'s ReLU,
  ``(B, 256, 9, 15)``. Needs a local weights file (``regularizer.weights_path``).
- ``efficientnet`` -> :class:`~.efficientnet.EfficientNetFeatures`: ImageNet
  EfficientNet-Lite0 stem + MBConv blocks 0..2, ``(B, 24, 9, 15)``. Weights ship
  with pip, works offline.

Contract (the LightningModule relies on it): ``forward(x)`` takes ``(B, C, H, W)``
images in [-1, 1] with C = 1 or 3 and returns ``(B, C', H', W')``; no trainable
parameters; always in eval mode, even after a parent's ``.train()``; differentiable
with respect to x (the refiner is trained through psi).

Adding a psi: subclass :class:`~.base.FeatureMap` in a new module here, build the
network in ``__init__`` and end it with ``self.freeze()``; map [-1, 1] inputs to what
the network expects (:func:`~.base.to_rgb01` handles grayscale); add
``conf/regularizer/<name>.yaml`` with its ``_target_`` and arguments; add it to the
parametrised tests in ``tests/test_regularizers.py``.
"""

from simgan.regularizers.base import FeatureMap
from simgan.regularizers.channel_mean import ChannelMean
from simgan.regularizers.identity import Identity

# VGGFeatures and EfficientNetFeatures are imported from their modules (Hydra
# _target_s do so) to keep `import simgan.regularizers` light.
__all__ = ["ChannelMean", "FeatureMap", "Identity"]
