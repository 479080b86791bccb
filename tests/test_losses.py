"""Local adversarial loss and self-regularization (Eq. 2-4)."""

import math

import torch
from torch import nn

from simgan.losses import REAL, REFINED, local_adversarial_loss, patch_accuracy, self_regularization
from simgan.regularizers.channel_mean import ChannelMean
from simgan.regularizers.identity import Identity


def test_adversarial_loss_is_mean_patch_cross_entropy():
    logits = torch.zeros(4, 2, 3, 5)
    # uniform logits: -log(1/2) at every patch, and the mean keeps it there
    assert math.isclose(local_adversarial_loss(logits, REAL).item(), math.log(2), rel_tol=1e-6)
    logits[:, REAL] = 10.0
    assert local_adversarial_loss(logits, REAL) < 1e-3
    assert local_adversarial_loss(logits, REFINED) > 9
    assert patch_accuracy(logits, REAL) == 1.0 and patch_accuracy(logits, REFINED) == 0.0


def test_adversarial_loss_does_not_scale_with_patch_count():
    small, large = torch.randn(2, 2, 3, 3), torch.randn(2, 2, 30, 30)
    small.fill_(0.3), large.fill_(0.3)
    assert torch.isclose(local_adversarial_loss(small, REAL), local_adversarial_loss(large, REAL))


def test_self_regularization_zero_for_identical_inputs_and_positive_otherwise():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    for psi in (Identity(), ChannelMean()):
        assert self_regularization(psi, x.clone(), x) == 0
    shifted = x + 0.25
    assert torch.isclose(self_regularization(Identity(), shifted, x), torch.tensor(0.25))


def test_self_regularization_gradient_reaches_refined_only():
    x = torch.rand(2, 1, 8, 8)
    refined = (x + 0.1).requires_grad_()
    source = x.clone().requires_grad_()
    self_regularization(nn.Identity(), refined, source).backward()
    assert refined.grad is not None and source.grad is None
