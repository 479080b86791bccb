"""SimGAN as a LightningModule with manual optimization (paper Algorithm 1).

Two networks, two optimizers, one optimizer step per training batch for the network
the :class:`~simgan.schedule.PhaseSchedule` names:

- refiner step (Eq. 4): ``L_R = L_real + lambda_reg * ||psi(R(x)) - psi(x)||_1``, with
  ``L_real`` left out during refiner pretraining. D's weights get no gradient.
- discriminator step (Eq. 2): ``L_D = CE(D(y), real) + CE(D(x~), refined)`` where the
  refined half-batch is b/2 current refined images and b/2 from the history buffer
  (Sec. 2.3). The refined images are made under ``no_grad``: L_D never reaches R.

Options from later GAN work, each off by default where it changes the paper's method
(``conf/model/simgan.yaml``; docs/evaluation.md measures each on the eye recipe):
``loss`` (cross-entropy, LSGAN, hinge: :mod:`simgan.losses`), ``r1_gamma`` (R1 penalty on
real images), ``diff_augment`` (the same differentiable augmentation of every image D
sees, in D's and in R's steps: :mod:`simgan.augment`), ``ema`` (an average of R's
weights used for validation, evaluation and refine: :mod:`simgan.ema`); spectral
normalization of D and R's padding are options of the nets themselves.

The nets are given as Hydra configs (``_target_`` dicts) so that ``save_hyperparameters``
records them and ``SimGAN.load_from_checkpoint`` rebuilds the module with no other file.

Reliability (docs/reliability.md): before each backward pass the step's inputs, refined
batch and loss are checked for NaN/inf; a non-finite one stops the run with
:class:`~simgan.errors.NonFiniteError` naming the step, phase and network,
before the optimizer step, so the weights stay as they were. Checkpoints carry the
schedule, the history buffer (a module buffer) and the global RNG states
(:mod:`simgan.checkpoint` owns those keys); the RNG states are restored at the first
training step after a resume: with the DataModule's stream positions, a resumed run
continues bit for bit.

Data: a training batch is ``{"synthetic": {"image": ...}}``; a discriminator step draws
its real batch from the DataModule (:meth:`~simgan.data.datamodule.SimGANDataModule.real_batch`)
and moves it to the device itself, so refiner steps read no real image. A loader of
``{"synthetic": ..., "real": ...}`` pairs (any other data source) works too: its real
half is used by discriminator steps.

Training scalars go to Lightning only at the steps the logger writes
(``trainer.log_every_n_steps``): logging them at every step cost 3.7 ms per step
(docs/benchmark.md, tiny nets), for rows nobody writes.

DDP (docs/scaling.md): every rank runs the same schedule, so all ranks step the same
network and each optimizer step's gradients are all-reduced (``manual_backward``); the
logged training scalars are means over the ranks (one all-reduce at each logged step,
and at every D step when the adaptive K_g rule needs the same D loss on every rank).
Each rank keeps its own history buffer, and every rank's buffer goes into the
checkpoint (:mod:`simgan.checkpoint`).
"""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from simgan.augment import build_diff_augment
from simgan.checkpoint import add_training_state, restore_training_state
from simgan.distributed import mean_over_ranks
from simgan.ema import WeightEMA
from simgan.errors import ConfigError, NonFiniteError
from simgan.history import HistoryBuffer
from simgan.losses import (REAL, REFINED, check_loss, discriminator_loss, patch_accuracy, r1_penalty,
                           refiner_realism_loss, self_regularization)
from simgan.reliability.finite import first_nonfinite
from simgan.reliability.rng import restore_rng_states
from simgan.schedule import DISCRIMINATOR, REFINER, Phase, PhaseSchedule


def _plain(cfg: Any) -> Any:
    # plain containers only: checkpoints must load with torch.load(weights_only=True)
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, (DictConfig, ListConfig)) else cfg


class SimGAN(LightningModule):
    def __init__(
        self,
        refiner: dict,
        discriminator: dict,
        regularizer: dict,
        image_shape: list[int],
        lambda_reg: float,
        history_size: int,
        schedule: dict,
        refiner_optimizer: dict,
        discriminator_optimizer: dict,
        grad_clip: float | None = None,
        channels_last: bool = False,
        compile: bool = False,
        loss: str = "cross_entropy",
        r1_gamma: float = 0.0,
        diff_augment: dict | None = None,
        ema: dict | None = None,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters({k: _plain(v) for k, v in locals().items() if k not in ("self", "__class__")})
        self.refiner = instantiate(_plain(refiner))
        self.discriminator = instantiate(_plain(discriminator))
        self.regularizer = instantiate(_plain(regularizer))
        self.history = HistoryBuffer(history_size, tuple(image_shape))
        try:  # their messages name the setting: a user error, not a crash
            self.schedule = PhaseSchedule(**_plain(schedule))
            self.loss = check_loss(loss)
            self.augment = build_diff_augment(_plain(diff_augment))
            ema = _plain(ema) or {}
            self.refiner_ema = WeightEMA(self.refiner, ema.get("decay", 0.999)) if ema.get("enabled") else None
            if not float(r1_gamma) >= 0:
                raise ValueError(f"model.r1_gamma must be >= 0, got {r1_gamma}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.r1_gamma = float(r1_gamma)
        self._rng_to_restore: dict | None = None
        self.last_saved_step: int | None = None  # global_step of the latest checkpoint built
        self._latest_logs: dict[str, Tensor] = {}  # each training scalar's value at its network's last step
        self.lambda_reg = float(lambda_reg)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # Compiled callables are kept off the module tree so state_dict keys stay plain
        # ("refiner.stem.0.weight", never "_orig_mod."): checkpoints load without compile.
        self._refine = torch.compile(self.refiner) if compile else self.refiner
        self._discriminate = torch.compile(self.discriminator) if compile else self.discriminator

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_refine", "_discriminate"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ---------------------------------------------------------------- set-up
    def configure_optimizers(self):
        opt_r = instantiate(_plain(self.hparams.refiner_optimizer))(self.refiner.parameters())
        opt_d = instantiate(_plain(self.hparams.discriminator_optimizer))(self.discriminator.parameters())
        return [opt_r, opt_d]

    def setup(self, stage: str) -> None:
        if self.memory_format is torch.channels_last:
            self.refiner.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
            if self.refiner_ema is not None:
                self.refiner_ema.to(memory_format=torch.channels_last)

    @property
    def inference_refiner(self):
        """The refiner that validation, grids, evaluation and refine use: R's weight average when enabled."""
        return self.refiner_ema if self.refiner_ema is not None else self._refine

    def forward(self, synthetic: Tensor) -> Tensor:
        """R(x): the refined images, for inference and export."""
        return self.inference_refiner(synthetic.contiguous(memory_format=self.memory_format))

    def _judge(self, images: Tensor) -> Tensor:
        """D's logits on ``images`` as D sees them in training (augmented when DiffAugment is on)."""
        return self._discriminate(self.augment(images) if self.augment is not None else images)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: dict, batch_idx: int) -> None:
        synthetic = batch["synthetic"]["image"].contiguous(memory_format=self.memory_format)
        phase, network = self.schedule.phase, self.schedule.network
        if network is REFINER:
            logs = self._refiner_step(synthetic, adversarial=phase is Phase.ADVERSARIAL)
        else:
            real = self._real_images(batch).contiguous(memory_format=self.memory_format)
            logs = self._discriminator_step(synthetic, real)
        self._latest_logs.update(logs)
        trainer = self._trainer
        distributed = trainer is not None and trainer.world_size > 1
        if network is DISCRIMINATOR and self.schedule.adapts:
            d_loss = logs["train/d_loss"]
            if distributed:  # the rule must see the same D loss on every rank, or they would step different networks
                d_loss = mean_over_ranks({"d_loss": d_loss}, trainer.strategy)["d_loss"]
            self.schedule.advance(d_loss=d_loss.item())
        else:
            self.schedule.advance()
        if self._logger_writes_this_step():
            # every key at its latest value (the other network's from its last step), as
            # logging every step would leave them in the row the logger writes now
            logs = dict(self._latest_logs)
            if distributed:  # means over the global batch
                logs = mean_over_ranks(logs, trainer.strategy)
            logs["train/phase"] = float(phase.number)
            logs["train/k_g"] = float(self.schedule.k_g)
            self.log_dict(logs, on_step=True, on_epoch=False, prog_bar=False, batch_size=synthetic.shape[0])

    def _logger_writes_this_step(self) -> bool:
        """Whether the logger writes this step's metrics (every ``trainer.log_every_n_steps``).

        Lightning writes the values ``on_step`` metrics have at the step it writes, so
        logging the steps in between changes no written row but costs time: 3.7 ms per
        step for our 8-10 values on CPU, where a whole plain step of tiny nets takes ~9 ms
        (``python -m simgan.bench``, overhead part). Every batch makes exactly one
        optimizer step, so after this step's, ``global_step`` is the 1-based number of the
        batch, which is what Lightning tests against ``log_every_n_steps`` (and it writes
        the last step's row when the run stops).
        """
        trainer = self._trainer
        if trainer is None:
            return True
        return trainer.global_step % max(int(trainer.log_every_n_steps), 1) == 0 or bool(trainer.should_stop)

    def _real_images(self, batch: dict) -> Tensor:
        """This D step's real images: the batch's own real half, else the DataModule's next real batch."""
        if "real" in batch:
            return batch["real"]["image"]
        images = self._trainer.datamodule.real_batch()["image"]
        return images.to(self.device, non_blocking=images.is_pinned())

    def _refiner_step(self, synthetic: Tensor, adversarial: bool) -> dict[str, Tensor]:
        opt_r = self.optimizers()[0]
        self.toggle_optimizer(opt_r)
        refined = self._refine(synthetic)
        reg = self_regularization(self.regularizer, refined, synthetic)
        loss = self.lambda_reg * reg
        logs = {"train/r_reg": reg.detach()}
        if adversarial:
            logits = self._judge(refined)
            realism = refiner_realism_loss(logits, self.loss)  # Eq. 3: -log D_real(R(x)) for cross-entropy
            loss = loss + realism
            logs["train/r_adv"] = realism.detach()
            logs["train/d_acc_refined_in_r_step"] = patch_accuracy(logits.detach(), REFINED, self.loss)
        self._stop_if_nonfinite(REFINER, {"synthetic input": synthetic, "refined output": refined,
                                          "refiner loss": loss})
        opt_r.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip(opt_r)
        opt_r.step()
        self.untoggle_optimizer(opt_r)
        if self.refiner_ema is not None:
            self.refiner_ema.update(self.refiner)
        logs["train/r_loss"] = loss.detach()
        return logs

    def _discriminator_step(self, synthetic: Tensor, real: Tensor) -> dict[str, Tensor]:
        opt_d = self.optimizers()[1]
        self.toggle_optimizer(opt_d)
        with torch.no_grad():  # L_D must not flow into R
            refined = self._refine(synthetic)
        fake = self.history.mix(refined)
        if self.r1_gamma > 0:  # the penalty needs D's graph on the real batch: reuse its logits
            penalty, logits_real = r1_penalty(self._discriminate, real, self.r1_gamma, self.augment)
        else:
            penalty, logits_real = None, self._judge(real)
        logits_fake = self._judge(fake)
        loss = discriminator_loss(logits_real, logits_fake, self.loss)  # Eq. 2 for cross-entropy
        if penalty is not None:
            loss = loss + penalty
        self._stop_if_nonfinite(DISCRIMINATOR, {"synthetic input": synthetic, "real input": real,
                                                "refined output": refined, "history sample": fake,
                                                "discriminator loss": loss})
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip(opt_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.history.push(refined)
        logs = {
            "train/d_loss": loss.detach(),
            "train/d_acc_real": patch_accuracy(logits_real.detach(), REAL, self.loss),
            "train/d_acc_refined": patch_accuracy(logits_fake.detach(), REFINED, self.loss),
            "train/history_filled": torch.tensor(float(len(self.history))),
        }
        if penalty is not None:
            logs["train/d_r1"] = penalty.detach()
        return logs

    def _stop_if_nonfinite(self, network: str, tensors: dict[str, Tensor]) -> None:
        """Raises NonFiniteError, before any optimizer step, if a tensor of this step is NaN/inf."""
        bad = first_nonfinite(tensors)
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            # every rank must stop, or the others hang in the next gradient all-reduce
            if not trainer.strategy.reduce_boolean_decision(bad is not None, all=False):
                return
            bad = bad or "value on another rank"
        elif bad is None:
            return
        s = self.schedule
        raise NonFiniteError(
            f"non-finite {bad} (NaN/inf) at step {s.step + 1} of {s.total_steps} (phase {s.phase}, network {network}); "
            "stopped before the optimizer step, no checkpoint written. Lower the learning rate "
            f"(model.{network}_optimizer.lr) or set model.grad_clip; a non-finite input means bad data")

    def _clip(self, optimizer) -> None:
        # Manual optimization ignores Trainer(gradient_clip_val): clip here.
        if self.hparams.grad_clip:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        synthetic, real = batch["synthetic"]["image"], batch["real"]["image"]
        refined = self(synthetic)
        logits_refined = self._discriminate(refined)
        logits_real = self._discriminate(real.contiguous(memory_format=self.memory_format))
        self.log_dict({
            "val/d_acc_real": patch_accuracy(logits_real, REAL, self.loss),
            "val/d_acc_refined": patch_accuracy(logits_refined, REFINED, self.loss),
            "val/r_adv": refiner_realism_loss(logits_refined, self.loss),
            # mean |R(x) - x| in [-1, 1] units: how far refinement moved the pixels
            "val/refine_l1": (refined - synthetic).abs().mean(),
        }, on_step=False, on_epoch=True, sync_dist=True, batch_size=synthetic.shape[0])

    # ---------------------------------------------------------------- checkpoints
    # Under DDP Lightning calls these on every rank (rank zero alone writes the file).
    # The RNG states are rank zero's: every rank is seeded alike and draws alike.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        add_training_state(checkpoint, self.schedule, self.history.images, self.history.filled)  # a collective
        self.last_saved_step = int(checkpoint.get("global_step", -1))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        trainer = self._trainer  # None for load_from_checkpoint: no rank, the state_dict's history
        self._rng_to_restore = restore_training_state(
            checkpoint, self.schedule, trainer.global_rank if trainer else None, trainer.world_size if trainer else None)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # At the first step after a resume, not at load time: what runs in between
        # (sanity validation, loader start-up) must not shift the streams.
        if self._rng_to_restore is not None:
            restore_rng_states(self._rng_to_restore)
            self._rng_to_restore = None
