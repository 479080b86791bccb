"""What is observed while a loop runs one window of steps: times, losses, step memory.

Both loops call ``before_step`` / ``after_step`` around every step (the platform from a
Lightning callback), so both are observed by the same code at the same points.
"""

from __future__ import annotations

import torch

from simgan.bench.timing import MemoryProbe, StepClock


class Window:
    def __init__(self, skip: int, device: torch.device, probe_steps: tuple[int, ...] = (), record_losses: bool = False):
        self.clock = StepClock(skip, device)
        self.probe = MemoryProbe(device)
        self.probe_steps = set(probe_steps)
        self.record_losses = record_losses
        self.memory_mib: dict[str, float] = {}
        self.losses: list[tuple[str, float]] = []

    def before_step(self, index: int, network: str) -> None:
        self.clock.tick(network)
        if index in self.probe_steps:
            self.probe.start()

    def after_step(self, index: int, network: str, loss) -> None:
        if index in self.probe_steps:
            self.memory_mib[network] = self.probe.stop()
        if self.record_losses:
            self.losses.append((network, float(loss)))
