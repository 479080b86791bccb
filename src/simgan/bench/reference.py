"""The reference: SimGAN's training step as a plain PyTorch loop, no Lightning.

Exactly the maths of :class:`simgan.module.SimGAN` in its adversarial phase (paper
Algorithm 1), with the project's nets, losses and history buffer:

- refiner step (Eq. 4): ``L_R = lambda * ||R(x) - x||_1 + CE(D(R(x)), real)``, D frozen;
- discriminator step (Eq. 2): ``L_D = CE(D(y), real) + CE(D(x~), refined)``, with x~
  half current refined images (made under ``no_grad``) and half from the history
  buffer (Sec. 2.3), which then takes b/2 of the current ones;

alternating ``k_g`` refiner steps and ``k_d`` discriminator steps. It is what one
would write by hand: losses only, no metrics, no logging. The fast paths are written
the usual way (``torch.autocast`` around forward and losses, not around backward).
"""

from __future__ import annotations

import contextlib

import torch
from hydra.utils import instantiate
from torch import Tensor

from simgan.bench.settings import BenchSettings, Variant
from simgan.history import HistoryBuffer
from simgan.losses import REAL, REFINED, local_adversarial_loss, self_regularization
from simgan.schedule import DISCRIMINATOR, REFINER


def net_configs(s: BenchSettings) -> dict[str, dict]:
    """The nets as ``_target_`` configs (what the platform's module is given).

    Only the run's sizes are set here (channels; the refiner's width and blocks): every
    other hyper-parameter, the discriminator's widths included, is the model class's
    default, the paper's gaze nets (Appendix A).
    """
    c = s.channels
    return {
        "refiner": {"_target_": "simgan.models.refiner.Refiner", "channels": c, "width": s.width,
                    "num_blocks": s.blocks},
        "discriminator": {"_target_": "simgan.models.discriminator.LocalDiscriminator", "channels": c},
        "regularizer": {"_target_": "simgan.regularizers.identity.Identity"},
    }


def optimizer_config(s: BenchSettings, fused: bool) -> dict:
    target = {"adam": "torch.optim.Adam", "sgd": "torch.optim.SGD"}[s.optimizer]
    cfg = {"_target_": target, "_partial_": True, "lr": s.lr}
    if fused:
        cfg["fused"] = True
    return cfg


class PlainLoop:
    impl = "plain"
    lambda_reg = 1.0
    k_g = k_d = 1

    def __init__(self, s: BenchSettings, variant: Variant, device: torch.device):
        self.s, self.variant, self.device = s, variant, device
        nets = net_configs(s)
        torch.manual_seed(s.seed)  # the platform's module is built after the same seed: same weights
        self.refiner = instantiate(nets["refiner"]).to(device)
        self.discriminator = instantiate(nets["discriminator"]).to(device)
        self.psi = instantiate(nets["regularizer"]).to(device)
        self.history = HistoryBuffer(s.history_size, s.image_shape).to(device)
        self.memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
        self.refiner.to(memory_format=self.memory_format)
        self.discriminator.to(memory_format=self.memory_format)
        self.R = torch.compile(self.refiner) if variant.compile else self.refiner
        self.D = torch.compile(self.discriminator) if variant.compile else self.discriminator
        self.position = 0  # in the K_g:K_d cycle

    def _autocast(self):
        if not self.variant.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _batch(self, stream: dict) -> Tensor:
        return stream["image"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def run(self, loaders: dict, window) -> None:
        """One pass over the loaders, one optimizer step per batch (a new optimizer per window, as
        each ``Trainer.fit`` of the platform makes)."""
        build = lambda net: instantiate(optimizer_config(self.s, self.variant.fused))(net.parameters())  # noqa: E731
        self.opt_r, self.opt_d = build(self.refiner), build(self.discriminator)
        for index, (syn, real) in enumerate(zip(loaders["synthetic"], loaders["real"])):
            network = REFINER if self.position < self.k_g else DISCRIMINATOR
            window.before_step(index, network)
            synthetic = self._batch(syn)
            if network == REFINER:
                loss = self.refiner_step(synthetic)
            else:
                loss = self.discriminator_step(synthetic, self._batch(real))
            window.after_step(index, network, loss)
            self.position = (self.position + 1) % (self.k_g + self.k_d)

    def refiner_step(self, synthetic: Tensor) -> Tensor:
        self.discriminator.requires_grad_(False)  # D is not trained here: no weight gradients for it
        with self._autocast():
            refined = self.R(synthetic)
            loss = self.lambda_reg * self_regularization(self.psi, refined, synthetic)
            loss = loss + local_adversarial_loss(self.D(refined), REAL)  # Eq. 3: -log D_real(R(x))
        self.opt_r.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_r.step()
        self.discriminator.requires_grad_(True)
        return loss.detach()

    def discriminator_step(self, synthetic: Tensor, real: Tensor) -> Tensor:
        self.refiner.requires_grad_(False)
        with self._autocast():
            with torch.no_grad():  # L_D must not flow into R
                refined = self.R(synthetic)
            fake = self.history.mix(refined)
            loss = local_adversarial_loss(self.D(real), REAL) + local_adversarial_loss(self.D(fake), REFINED)  # Eq. 2
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.refiner.requires_grad_(True)
        self.history.push(refined)
        return loss.detach()
