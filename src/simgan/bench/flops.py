"""FLOPs per image of each training step, counted by torch (``FlopCounterMode``).

Counted, not estimated: one refiner step and one discriminator step of the reference
loop (:mod:`.reference`) run under ``torch.utils.flop_counter.FlopCounterMode``, which
counts the multiply-adds (x2) of every convolution and matmul, forward and backward.
Every term is linear in the batch, so a batch of 2 gives the per-image figures. For
the paper's gaze nets at 35x55 this gives R's forward 1.138 GFLOP and D's 19.7 MFLOP
per image.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.utils.flop_counter import FlopCounterMode

from simgan.bench.reference import PlainLoop
from simgan.bench.settings import BenchSettings, Variant


def count_flops(fn) -> int:
    """FLOPs torch counts while ``fn()`` runs (multiply-adds x2, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def step_flops(s: BenchSettings, batch: int = 2) -> dict[str, float]:
    """FLOPs per image: ``refiner_forward``, ``discriminator_forward``, ``refiner_step``, ``discriminator_step``."""
    small = dataclasses.replace(s, history_size=batch)
    loop = PlainLoop(small, Variant(), torch.device("cpu"))
    build = lambda net: torch.optim.SGD(net.parameters(), lr=0.0)  # noqa: E731  (counting only)
    loop.opt_r, loop.opt_d = build(loop.refiner), build(loop.discriminator)
    x = torch.rand(batch, *s.image_shape) * 2 - 1
    with torch.no_grad():
        r_fwd = count_flops(lambda: loop.refiner(x))
        d_fwd = count_flops(lambda: loop.discriminator(x))
    loop.history.push(x)  # a full history: the D step mixes as in steady state
    r_step = count_flops(lambda: loop.refiner_step(x))
    d_step = count_flops(lambda: loop.discriminator_step(x, x))
    return {"refiner_forward": r_fwd / batch, "discriminator_forward": d_fwd / batch,
            "refiner_step": r_step / batch, "discriminator_step": d_step / batch}
