"""The switches from later GAN work: padding, LSGAN/hinge, spectral norm, DiffAugment, EMA, R1.

Each is tested for what it promises on its own, and all of them together in a real
training run that resumes bit for bit and whose checkpoint refines with the averaged R.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reliability_helpers import run_dir, tiny_cfg, train_losses
from simgan.augment import DiffAugment
from simgan.ema import WeightEMA
from simgan.checkpoint import load_refiner
from simgan.losses import (REAL, REFINED, discriminator_loss, patch_accuracy, r1_penalty, realism_score,
                           refiner_realism_loss)
from simgan.metrics.border import border_step
from simgan.models.discriminator import LocalDiscriminator
from simgan.models.noise import hashed_noise
from simgan.models.refiner import Refiner
from simgan.training import train


def _logits(score: float, shape=(2, 3, 4)) -> torch.Tensor:
    """Logits whose realism score s = logit_real - logit_refined is ``score`` everywhere."""
    b, h, w = shape
    logits = torch.zeros(b, 2, h, w)
    logits[:, REAL] = score
    return logits


# ---------------------------------------------------------------- padding
@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_refiner_pretrained_on_flat_images_keeps_them_flat_to_the_border(padding):
    torch.manual_seed(0)
    refiner = Refiner(channels=1, width=8, num_blocks=2, padding=padding)
    opt = torch.optim.Adam(refiner.parameters(), lr=1e-3)
    for _ in range(60):  # refiner pretraining (self-regularization only) on flat grey images
        x = torch.rand(8, 1, 1, 1).mul(1.6).sub(0.8).expand(8, 1, 20, 30).contiguous()
        loss = (refiner(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    flat = torch.full((1, 1, 20, 30), 0.3)
    out = refiner(flat).detach()
    assert (out - out.mean()).abs().max() < 1e-5  # every pixel, the border included, the same
    assert border_step(out) < 0.01


def test_zero_padding_makes_a_border_on_flat_images():
    # what the reflect default removes: the same net with zero padding frames a flat image
    torch.manual_seed(0)
    out = Refiner(channels=1, width=8, num_blocks=2, padding="zeros")(torch.full((1, 1, 20, 30), 0.3)).detach()
    assert border_step(out) > 0.5


def test_refiner_rejects_an_unknown_padding_naming_the_setting():
    with pytest.raises(ValueError, match="model.refiner.padding"):
        Refiner(padding="circularish")


def test_border_step_measures_the_outer_ring_against_the_next():
    image = torch.full((2, 1, 10, 12), -1.0)
    image[:, :, 0, :] = image[:, :, -1, :] = image[:, :, :, 0] = image[:, :, :, -1] = 1.0  # white frame on black
    assert border_step(image) == pytest.approx(255.0)
    assert border_step(-image, signed=True) == pytest.approx(-255.0)  # a dark frame on white
    assert border_step(torch.zeros(3, 1, 10, 12)) == 0.0


# ---------------------------------------------------------------- noise input
def test_hashed_noise_is_a_fixed_function_of_each_image_alone():
    torch.manual_seed(0)
    images = torch.rand(6, 1, 12, 20) * 2 - 1
    noise = hashed_noise(images, 2)
    assert noise.shape == (6, 2, 12, 20)
    assert torch.equal(hashed_noise(images[2:3], 2), noise[2:3])  # the batch around it does not matter
    assert torch.equal(hashed_noise(images.flip(0), 2), noise.flip(0))
    assert -1 <= noise.min() and noise.max() < 1
    assert abs(noise.mean().item()) < 0.03 and abs(noise.std().item() - 3 ** -0.5) < 0.02  # uniform
    # unrelated fields for different images, and for neighbouring pixels
    assert abs(torch.corrcoef(torch.stack([noise[0].flatten(), noise[1].flatten()]))[0, 1]) < 0.1
    assert abs(torch.corrcoef(torch.stack([noise[..., :-1].flatten(), noise[..., 1:].flatten()]))[0, 1]) < 0.05
    changed = images.clone()
    changed[0, 0, 3, 3] += 0.05  # one pixel, a few grey levels
    assert (hashed_noise(changed, 2)[0] != noise[0]).float().mean() > 0.9


def test_refiner_with_noise_input_keeps_the_image_channels_and_is_deterministic():
    torch.manual_seed(0)
    refiner = Refiner(channels=1, width=8, num_blocks=1, noise_channels=2, padding="reflect")
    assert refiner.stem[0].in_channels == 3
    x = torch.full((2, 1, 20, 30), 0.3)
    x[1] = -0.2
    out = refiner(x)
    assert out.shape == x.shape
    assert torch.equal(out, refiner(x)) and out[0].std() > 0  # the flat image gets texture, the same every call


# ---------------------------------------------------------------- losses
def test_cross_entropy_family_is_the_papers_two_class_cross_entropy():
    logits = torch.randn(4, 2, 3, 5)
    s = realism_score(logits)
    assert torch.isclose(discriminator_loss(logits, logits, "cross_entropy"),
                         nn.functional.softplus(-s).mean() + nn.functional.softplus(s).mean(), atol=1e-6)
    assert math.isclose(refiner_realism_loss(_logits(0.0), "cross_entropy").item(), math.log(2), rel_tol=1e-6)


def test_lsgan_and_hinge_losses_have_their_published_values():
    real, refined = _logits(1.0), _logits(0.0)
    assert discriminator_loss(real, refined, "lsgan").item() == pytest.approx(0.0)  # 0-1 coding: D perfect
    assert refiner_realism_loss(refined, "lsgan").item() == pytest.approx(0.5)  # (0 - 1)^2 / 2
    assert discriminator_loss(_logits(2.0), _logits(-3.0), "hinge").item() == pytest.approx(0.0)  # beyond the margin
    assert discriminator_loss(_logits(0.0), _logits(0.0), "hinge").item() == pytest.approx(2.0)
    assert refiner_realism_loss(_logits(1.5), "hinge").item() == pytest.approx(-1.5)


@pytest.mark.parametrize("loss", ["cross_entropy", "lsgan", "hinge"])
def test_each_loss_pushes_the_refiner_toward_real(loss):
    logits = _logits(-0.5).requires_grad_(True)
    refiner_realism_loss(logits, loss).backward()
    assert (logits.grad[:, REAL] < 0).all()  # raising the "real" logit lowers R's loss


def test_patch_accuracy_uses_each_losses_decision_threshold():
    between = _logits(0.3)  # real by the sign, refined by LSGAN's 0-1 midpoint 0.5
    assert patch_accuracy(between, REAL, "cross_entropy") == 1.0
    assert patch_accuracy(between, REAL, "lsgan") == 0.0
    assert patch_accuracy(between, REFINED, "lsgan") == 1.0


# ---------------------------------------------------------------- spectral norm
def test_spectral_norm_bounds_every_discriminator_layer():
    torch.manual_seed(0)
    d = LocalDiscriminator(channels=1, widths=(8, 8, 8, 8), spectral_norm=True)
    x = torch.randn(4, 1, 20, 30)
    for _ in range(30):  # power iterations run in training-mode forwards
        d(x)
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)
    assert d(x).shape == (4, 2, 5, 8)
    plain = LocalDiscriminator(channels=1, widths=(8, 8, 8, 8))
    assert not any(k.endswith("original") for k in plain.state_dict())


# ---------------------------------------------------------------- DiffAugment
def test_diff_augment_is_differentiable_and_random_per_image():
    torch.manual_seed(0)
    augment = DiffAugment(["translation", "cutout", "brightness", "contrast"])
    x = torch.rand(16, 1, 20, 30, requires_grad=True)
    y = augment(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # R's gradient passes through
    assert not torch.equal(y[0], y[1] - (x[1] - x[0]))  # each image its own draw


def test_translation_moves_pixels_and_repeats_the_edge_and_cutout_greys_a_box():
    torch.manual_seed(0)
    x = torch.arange(20 * 30, dtype=torch.float32).view(1, 1, 20, 30).repeat(32, 1, 1, 1) / 600
    moved = DiffAugment(["translation"])(x)
    assert set(moved.unique().tolist()) <= set(x.unique().tolist())  # no new values: the edge is continued
    assert (moved != x).flatten(1).any(1).float().mean() > 0.5
    cut = DiffAugment(["cutout"], cutout_ratio=0.5)(x + 1)
    zero_fraction = (cut == 0).float().mean().item()
    assert 0.1 < zero_fraction <= 0.25 + 1e-6  # at most a 10x15 box of 20x30, hanging over the edge at times


def test_diff_augment_rejects_an_unknown_op_naming_the_setting():
    with pytest.raises(ValueError, match="model.diff_augment.policy"):
        DiffAugment(["rotate"])


# ---------------------------------------------------------------- EMA
def test_weight_ema_follows_the_warmed_up_exponential_average():
    net = nn.Linear(3, 1)
    ema = WeightEMA(net, decay=0.9)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # t = 1: d = min(0.9, 2 / 11)
    d = 2 / 11
    assert torch.allclose(ema.average.weight, d * start + (1 - d) * net.weight.detach())
    for _ in range(200):
        ema.update(net)
    assert torch.allclose(ema.average.weight, net.weight.detach(), atol=1e-6)
    assert not any(p.requires_grad for p in ema.parameters())
    ema.train()
    assert not ema.average.training


# ---------------------------------------------------------------- R1
def test_r1_penalty_is_zero_for_a_flat_discriminator_and_trains_d():
    real = torch.randn(4, 1, 12, 12)
    flat = nn.Conv2d(1, 2, 3, padding=1)
    nn.init.zeros_(flat.weight)
    penalty, _ = r1_penalty(flat, real, gamma=10.0)
    assert penalty.item() == 0.0
    torch.manual_seed(0)
    d = LocalDiscriminator(channels=1, widths=(8, 8, 8, 8))
    penalty, logits = r1_penalty(d, real, gamma=10.0)
    assert penalty.item() > 0 and logits.shape[1] == 2
    penalty.backward()
    # every weight gets a gradient (biases cannot: they do not change d s / d y)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in d.named_parameters() if n.endswith("weight"))


# ---------------------------------------------------------------- all together, end to end
ALL_OPTIONS = [
    "model.loss=hinge", "model.r1_gamma=1.0", "model.discriminator.spectral_norm=true",
    "model.diff_augment.enabled=true", "model.diff_augment.policy=[translation,cutout,brightness,contrast]",
    "model.ema.enabled=true", "model.ema.decay=0.9", "model.refiner.padding=replicate",
]


@pytest.mark.slow
def test_every_option_together_trains_resumes_bitwise_and_refines_with_the_average(compose_train, tmp_path):
    full = run_dir(tmp_path, "full")
    train(tiny_cfg(compose_train, full, *ALL_OPTIONS))
    reference = train_losses(full)
    ckpt = full / "checkpoints" / "step000007.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert any(k.startswith("refiner_ema.average.") for k in state["state_dict"])
    resumed_dir = run_dir(tmp_path, "resumed")
    train(tiny_cfg(compose_train, resumed_dir, *ALL_OPTIONS, f"ckpt_path={ckpt}"))
    resumed = train_losses(resumed_dir)
    assert sorted(resumed) == list(range(7, len(reference)))
    for step in resumed:
        assert resumed[step] == reference[step], f"step {step + 1} differs after resuming"
    # refine/evaluate load the weight average, not the last iterate
    last = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    refiner, _ = load_refiner(full / "checkpoints" / "last.ckpt", hash_file=False)
    for name, value in refiner.state_dict().items():
        assert torch.equal(value, last[f"refiner_ema.average.{name}"])
    assert any(not torch.equal(v, last[f"refiner.{k}"]) for k, v in refiner.state_dict().items())
    assert "train/d_r1" in (full / "csv" / "metrics.csv").read_text().splitlines()[0]
