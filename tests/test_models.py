"""The paper's networks: shapes for eye sizes, output range, logits with no activation."""

import pytest
import torch
from torch import nn

from simgan.models.discriminator import LocalDiscriminator
from simgan.models.refiner import Refiner


@pytest.mark.parametrize("size", [(36, 60), (35, 55), (72, 120)])
def test_refiner_keeps_shape_and_range(size):
    refiner = Refiner(channels=1, width=16, num_blocks=2)
    x = torch.rand(3, 1, *size) * 2 - 1
    y = refiner(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_refiner_is_fully_convolutional_with_configurable_depth():
    refiner = Refiner(channels=3, width=8, num_blocks=10, kernel_size=7)
    assert len(refiner.blocks) == 10
    convs = [m for m in refiner.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.stride == (1, 1) for m in convs)
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Linear)) for m in refiner.modules())
    assert refiner(torch.zeros(1, 3, 24, 24)).shape == (1, 3, 24, 24)


@pytest.mark.parametrize("size,patches", [((36, 60), (9, 15)), ((35, 55), (9, 14))])
def test_discriminator_gives_a_logit_pair_per_patch(size, patches):
    d = LocalDiscriminator(channels=1)
    assert isinstance(d.net[-1], nn.Conv2d)  # the logits layer is last: nothing after it
    with torch.no_grad():
        d.net[-1].bias.fill_(-5.0)
    logits = d(torch.rand(2, 1, *size) * 2 - 1)
    assert logits.shape == (2, 2, *patches)
    # raw logits: a ReLU on them (peer bug) would clip these negative values to 0
    assert (logits < 0).any()


def test_discriminator_is_not_linear():
    # the most-copied public port left the activation at None: D(a + b) == D(a) + D(b) - D(0) for a linear D
    torch.manual_seed(0)
    d = LocalDiscriminator(channels=1)
    a, b = torch.randn(1, 1, 36, 60), torch.randn(1, 1, 36, 60)
    zero = torch.zeros_like(a)
    assert not torch.allclose(d(a + b), d(a) + d(b) - d(zero), atol=1e-4)


def test_receptive_field_of_paper_discriminator():
    assert LocalDiscriminator().receptive_field() == 23
