"""How the metrics train and run their small models: seeded, time-bounded, with a progress bar.

The C2ST judge (Sec. 3.1's visual Turing test with a CNN for the subject), the pupil/gaze
estimator and the downstream task models (Sec. 3.2) are all trained fresh inside a metric
call; these helpers make that deterministic for a seed (:func:`seeded`, :func:`minibatches`),
bounded in time (:class:`Deadline`, :func:`fit_epochs`) and free of BatchNorm lag
(:func:`recalibrate_batchnorm`), and run them in batches (:func:`predict`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm


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
    """Index batches over ``range(n)``, in an order drawn from ``generator`` (or in order)."""
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
