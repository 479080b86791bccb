"""The platform's fast paths train like the fp32 eager path.

Each fast path (``model.channels_last``, fused optimizers ``model.*_optimizer.fused``,
``trainer.precision=bf16-mixed``, ``model.compile``) trains a tiny SimGAN through all
three phases from the same seed on the same batches, and its per-step losses are
compared with the fp32 eager run's:

- fp32 paths (channels_last, fused, compile): relative difference <= 1e-4 per step
  (only the order of floating-point sums may differ: NHWC kernels, fused Adam, inductor;
  measured: 0 for channels_last and fused on a 2-core AVX2 CPU);
- bf16-mixed: relative difference <= 1e-2 per step (bf16 keeps 8 bits of mantissa,
  ~4e-3 relative per rounding, but the losses are means computed in fp32; measured:
  4e-4).

A checkpoint written with ``compile=true`` has plain keys and loads into a module built
with ``compile=false``, giving the same refiner.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from simgan.bench.data import PreBatched
from simgan.module import SimGAN
from simgan.schedule import REFINER

FP32_RTOL = 1e-4
BF16_RTOL = 1e-2
SHAPE = (1, 16, 24)
SCHEDULE = {"refiner_pretrain_steps": 2, "discriminator_pretrain_steps": 1, "adversarial_steps": 5, "k_g": 1, "k_d": 1}
STEPS = sum(v for k, v in SCHEDULE.items() if k.endswith("_steps"))


def tiny(channels_last=False, compile=False, fused=False, **kwargs) -> SimGAN:
    opt = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, **({"fused": True} if fused else {})}
    torch.manual_seed(0)
    return SimGAN(
        refiner={"_target_": "simgan.models.refiner.Refiner", "channels": 1, "width": 8, "num_blocks": 1},
        discriminator={"_target_": "simgan.models.discriminator.LocalDiscriminator", "channels": 1,
                       "widths": [8, 8, 8, 8]},
        regularizer={"_target_": "simgan.regularizers.identity.Identity"}, image_shape=list(SHAPE),
        lambda_reg=1.0, history_size=16, schedule=SCHEDULE, refiner_optimizer=opt, discriminator_optimizer=opt,
        channels_last=channels_last, compile=compile, **kwargs)


def batches() -> CombinedLoader:
    g = torch.Generator().manual_seed(1)
    make = lambda: [torch.rand(8, *SHAPE, generator=g) * 2 - 1 for _ in range(3)]  # noqa: E731
    return CombinedLoader({"synthetic": DataLoader(PreBatched(make(), STEPS), batch_size=None),
                           "real": DataLoader(PreBatched(make(), STEPS), batch_size=None)}, mode="max_size_cycle")


class Losses(Callback):
    """Each step's loss of the network it trained (r_loss or d_loss), and its dtype."""

    def __init__(self):
        self.values: list[tuple[str, float]] = []
        self.dtypes: set[torch.dtype] = set()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.network = module.schedule.network

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        loss = trainer.callback_metrics["train/r_loss" if self.network == REFINER else "train/d_loss"]
        self.values.append((self.network, float(loss)))
        self.dtypes.add(loss.dtype)


def train(module: SimGAN, tmp_path, precision: str = "32-true") -> tuple[Trainer, Losses]:
    torch.manual_seed(2)  # the history buffer's draws
    losses = Losses()
    trainer = Trainer(accelerator="cpu", precision=precision, max_steps=STEPS, max_epochs=-1, logger=False,
                      log_every_n_steps=1,  # step metrics every step (a module may log only on logged steps)
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path, callbacks=[losses])
    trainer.fit(module, train_dataloaders=batches())
    return trainer, losses


def assert_close(fast: Losses, eager: Losses, rtol: float) -> None:
    assert [n for n, _ in fast.values] == [n for n, _ in eager.values]
    for step, ((net, a), (_, b)) in enumerate(zip(fast.values, eager.values)):
        assert abs(a - b) <= rtol * abs(b), f"step {step} ({net}): {a} vs eager {b}"


@pytest.fixture(scope="module")
def eager(tmp_path_factory) -> Losses:
    _, losses = train(tiny(), tmp_path_factory.mktemp("eager"))
    assert len(losses.values) == STEPS
    return losses


@pytest.mark.parametrize("option", ["channels_last", "fused"])
def test_fp32_fast_path_matches_eager(option, eager, tmp_path):
    _, losses = train(tiny(**{option: True}), tmp_path)
    assert_close(losses, eager, FP32_RTOL)


def test_bf16_mixed_matches_eager_loosely_with_fp32_losses(eager, tmp_path):
    module = tiny()
    _, losses = train(module, tmp_path, precision="bf16-mixed")
    assert_close(losses, eager, BF16_RTOL)
    assert losses.dtypes == {torch.float32}  # the losses are computed in fp32 under autocast
    assert all(p.dtype == torch.float32 for p in module.parameters())  # master weights stay fp32
    assert module.history.images.dtype == torch.float32


@pytest.mark.slow
def test_compile_matches_eager_and_its_checkpoint_loads_without_compile(eager, tmp_path):
    module = tiny(compile=True)
    trainer, losses = train(module, tmp_path)
    assert_close(losses, eager, FP32_RTOL)
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["state_dict"]
    assert not [k for k in state if "_orig_mod" in k]
    restored = SimGAN.load_from_checkpoint(path, compile=False)
    assert restored._refine is restored.refiner  # not compiled
    x = torch.rand(4, *SHAPE) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(restored(x), module.refiner(x), atol=1e-6)
    for key, value in module.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
