"""What the metrics share: input checks, a seeded scope, time-bounded training loops."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm


def check_images(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must be float N x C x H x W in [-1, 1] (the project's image convention)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a tensor N x C x H x W, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected float images in [-1, 1], got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError(f"{name}: no images")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"{name}: pixel values must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]")
    return x


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seeds torch's global RNG inside the block and restores the caller's state after.

    Weight init and dropout draw from the global RNG; forking keeps a metric call from
    changing the random stream of the training run that calls it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def minibatches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


class Deadline:
    """Wall-clock budget for a training loop: ``if deadline.passed: break``."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = time.monotonic()

    @property
    def passed(self) -> bool:
        return self.seconds is not None and time.monotonic() - self.start > self.seconds

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def progress(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr (tqdm comes with Lightning); silent when ``enabled`` is false."""
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, mininterval=0.5, dynamic_ncols=True)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Replaces BatchNorm running statistics by exact averages over ``x`` (training images).

    BatchNorm speeds training up a lot, but after a few epochs its running averages
    still lag the weights, which shifts eval-mode outputs: a C2ST judge keeps its AUC but
    loses accuracy at threshold 0, a regressor picks up an offset. Re-estimating them
    with the final weights removes that shift.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    device = next(model.parameters()).device
    model.train()
    for start in range(0, len(x), batch_size):
        model(x[start:start + batch_size].to(device))
    model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``model(x)`` in eval mode, in batches; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def fit_epochs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, epochs: int, batch_size: int,
               lr: float, generator: torch.Generator, time_budget_s: float | None, desc: str,
               show_progress: bool = True, device: str | torch.device = "cpu") -> int:
    """Adam on shuffled minibatches of (x, y) for ``epochs`` epochs or until the time
    budget runs out, with a progress bar; returns the number of epochs started."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    deadline = Deadline(time_budget_s)
    batches = -(-len(x) // batch_size)
    done = 0
    with progress(epochs * batches, desc, show_progress) as bar:
        for _ in range(epochs):
            model.train()
            for idx in minibatches(len(x), batch_size, generator):
                loss = loss_fn(model(x[idx].to(device)), y[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
                if deadline.passed:
                    break
            done += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if deadline.passed:
                break
    return done
