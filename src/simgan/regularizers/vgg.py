"""psi = a mid layer of ImageNet VGG16: self-regularization in a CNN feature space.

Paper Eq. 4 allows psi to be "a learned transformation such as a convolutional
neural network" (Sec. 2.1); the paper's own experiments use identity (Sec. 3.1) or
the RGB mean (Sec. 3.3), and a VGG layer is the usual choice in practice when the
synthetic/real gap is too large for a pixel L1. Comparing ``psi(R(x))`` with
``psi(x)`` in VGG feature space is a perceptual ("feature reconstruction") loss: the
refiner may change texture, noise and colour as long as the mid-level structure
(edges, parts and their positions) that carries the label stays put.

Default layer ``conv3_3`` (output of its ReLU, torchvision index 15): 256 channels
at 1/4 resolution (36x60 eye -> 9x15), receptive field 40 px, i.e. the classic
perceptual-loss layer. It keeps eyelid/iris positions localised to ~4 px while
ignoring pixel-level noise. Earlier layers (``conv2_2``) are closer to identity,
later ones (``conv4_3``, 1/8 resolution) lose the localisation gaze labels need.

The network is built in plain torch with the module indices of torchvision's
``vgg16().features`` so a torchvision state dict loads key for key. ImageNet weights
come from a local file (``weights_path``): this project does not depend on
torchvision, so it only downloads them when torchvision happens to be installed and
``weights_path`` is null. Create the file once, on any machine with torchvision::

    torch.save(torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict(), PATH)

Input: ``(B, 1|3, H, W)`` in [-1, 1]; grayscale is repeated to RGB and the result is
normalised with the ImageNet mean/std the torchvision weights were trained with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from simgan.errors import ConfigError, DataError
from simgan.regularizers.base import FeatureMap, to_rgb01

# torchvision's cfg "D": channel counts, "M" = 2x2 max-pool.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M"]  # fmt: skip
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_HOW_TO_GET = (
    "create it on a machine with torchvision: torch.save(torchvision.models."
    'vgg16(weights="IMAGENET1K_V1").state_dict(), "{path}")'
)


def _layer_indices() -> dict[str, int]:
    """``conv{block}_{i}`` -> index of the ReLU after that conv in ``features``."""
    names, block, conv, idx = {}, 1, 0, 0
    for v in _VGG16_CFG:
        if v == "M":
            block, conv, idx = block + 1, 0, idx + 1
        else:
            conv += 1
            names[f"conv{block}_{conv}"] = idx + 1
            idx += 2
    return names


LAYERS = _layer_indices()
# Every weight/bias key of the full torchvision VGG16 ``features`` (0..28).
_FULL_KEYS = {f"{relu - 1}.{p}" for relu in LAYERS.values() for p in ("weight", "bias")}


def build_vgg16_features(last_index: int) -> nn.Sequential:
    """torchvision ``vgg16().features`` layout, modules ``0..last_index`` only."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU()]
            in_ch = v
    return nn.Sequential(*layers[: last_index + 1])


def _features_state_dict(raw: object, path: str) -> dict[str, torch.Tensor]:
    """Accept a torchvision VGG16 state dict, its ``features`` part, or either nested
    under ``state_dict``; return ``features`` keys without the ``features.`` prefix."""
    if isinstance(raw, Mapping) and "state_dict" in raw:
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"regularizer.weights_path={path!r} holds a {type(raw).__name__}, not a "
            "VGG16 state dict; save model.state_dict(), not the model"
        )
    out = {}
    for key, value in raw.items():
        if key.startswith("classifier."):
            continue  # the fully connected head is not part of psi
        out[re.sub(r"^features\.", "", key)] = value
    return out


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(
            f"VGG16 weights not found at regularizer.weights_path={path!r}; "
            + _HOW_TO_GET.format(path=path)
        )
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: the file is not a torch state dict
        raise DataError(
            f"could not read VGG16 weights {path!r} ({type(exc).__name__}: {exc}); "
            + _HOW_TO_GET.format(path=path)
        ) from exc
    return _features_state_dict(raw, path)


def _torchvision_weights() -> dict[str, torch.Tensor]:
    try:
        import torchvision  # optional: not a dependency of this project
    except Exception as exc:  # ImportError, or a torch/torchvision version clash
        raise ConfigError(
            "regularizer.weights_path must be set for the VGG regularizer: "
            f"torchvision is not usable here ({type(exc).__name__}) so ImageNet "
            "weights cannot be fetched. Point it at a VGG16 state dict; "
            + _HOW_TO_GET.format(path="vgg16.pth")
        ) from exc
    net = torchvision.models.vgg16(weights="IMAGENET1K_V1")
    return dict(net.features.state_dict())


class VGGFeatures(FeatureMap):
    """VGG16 ``features`` up to and including the ReLU after ``layer``.

    Args:
        weights_path: torchvision-format VGG16 state dict (``features.0.weight``, ...;
            ``classifier.*`` ignored; may be nested under ``state_dict``). ``None``:
            fetch ImageNet weights through torchvision if it is installed, else
            :class:`~simgan.errors.ConfigError`.
        layer: ``conv{block}_{i}``, e.g. ``conv2_2``, ``conv3_3`` (default), ``conv4_3``.

    Output for a ``(B, C, 36, 60)`` input with ``conv3_3``: ``(B, 256, 9, 15)``.
    """

    def __init__(self, weights_path: str | None = None, layer: str = "conv3_3") -> None:
        super().__init__()
        if layer not in LAYERS:
            raise ConfigError(
                f"regularizer.layer={layer!r} is not a VGG16 conv layer; "
                f"choose one of {', '.join(LAYERS)}"
            )
        self.layer = layer
        self.features = build_vgg16_features(LAYERS[layer])
        if weights_path is None:
            self._load(_torchvision_weights(), "torchvision IMAGENET1K_V1")
        else:
            self._load(_read_weights(str(weights_path)), str(weights_path))
        # Non-persistent: constants, not weights; they follow .to(device) but stay out
        # of checkpoints.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def _load(self, state: dict[str, torch.Tensor], path: str) -> None:
        needed = set(self.features.state_dict())
        missing = sorted(needed - state.keys(), key=lambda k: int(k.split(".")[0]))
        # Later VGG16 layers are fine (psi is truncated); anything else is not VGG16.
        unexpected = sorted(state.keys() - _FULL_KEYS)
        if missing or unexpected:
            raise ConfigError(
                f"regularizer.weights_path={path!r} is not a torchvision VGG16 state dict:"
                f" missing keys {missing[:6]}, unexpected keys {unexpected[:6]}"
            )
        try:
            self.features.load_state_dict({k: state[k] for k in needed})
        except RuntimeError as exc:  # right keys, wrong shapes
            raise ConfigError(
                f"regularizer.weights_path={path!r} does not match VGG16: {exc}"
            ) from exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((to_rgb01(x) - self.mean) / self.std)
