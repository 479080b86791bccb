"""SimGAN's three-phase training schedule (paper Algorithm 1 and Sec. 3.1).

1. ``refiner_pretrain``: R alone, self-regularization only, for N steps (R starts as
   an identity-like map instead of noise; public SimGAN ports use 500-2000 steps).
2. ``discriminator_pretrain``: D alone on real vs. refined, for M steps (~200).
3. ``adversarial``: cycles of K_g refiner steps then K_d discriminator steps, for a
   given number of optimizer steps (gaze: K_g = 50, K_d = 1 in the paper).

Every training batch makes exactly one optimizer step, for the network this schedule
names, so Lightning's ``global_step`` (which counts optimizer steps) equals the number
of batches, and ``total_steps`` is the run's ``max_steps``. The schedule keeps its own
counters (in checkpoints via ``state_dict``), since ``global_step`` knows no phases.

Adaptive K_g (optional): the paper advises starting with a small K_g and raising it
while D wins. At each cycle's end, if D's mean loss in the cycle fell below
``d_loss_low`` (D wins), K_g grows by one up to ``k_g_max``; if it rose above
``d_loss_high`` (R wins), K_g shrinks by one down to ``k_g_min``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class _Named(str, Enum):
    # a str, printed and formatted as its value: messages and logs say "adversarial"
    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class Phase(_Named):
    """The three phases, in order; a ``str`` so logs, checkpoints and configs keep their names."""

    REFINER_PRETRAIN = "refiner_pretrain"
    DISCRIMINATOR_PRETRAIN = "discriminator_pretrain"
    ADVERSARIAL = "adversarial"

    @property
    def number(self) -> int:
        """0, 1, 2: the ``train/phase`` value the loggers plot."""
        return list(Phase).index(self)


class Network(_Named):
    """The network an optimizer step trains."""

    REFINER = "refiner"
    DISCRIMINATOR = "discriminator"


REFINER, DISCRIMINATOR = Network.REFINER, Network.DISCRIMINATOR


@dataclass
class AdaptiveKg:
    """The adaptive K_g rule's settings (``model.schedule.adaptive``; values: the config)."""

    enabled: bool
    k_g_min: int
    k_g_max: int
    d_loss_low: float
    d_loss_high: float


@dataclass
class PhaseSchedule:
    """Phase lengths, K_g and K_d (``model.schedule`` in ``conf/model/simgan.yaml``, the one
    place their default values are stated), then the progress through them."""

    refiner_pretrain_steps: int
    discriminator_pretrain_steps: int
    adversarial_steps: int
    k_g: int
    k_d: int
    adaptive: AdaptiveKg | dict | None = None  # None: K_g stays fixed
    # progress: everything below is state, saved and restored with the run
    step: int = 0
    cycle_pos: int = 0
    refiner_steps: int = 0
    discriminator_steps: int = 0
    cycle_d_loss_sum: float = 0.0
    cycle_d_steps: int = 0

    def __post_init__(self):
        if isinstance(self.adaptive, dict):
            self.adaptive = AdaptiveKg(**self.adaptive)
        self.adapts = self.adaptive is not None and bool(self.adaptive.enabled)
        for name in ("refiner_pretrain_steps", "discriminator_pretrain_steps", "adversarial_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"model.schedule.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("k_g", "k_d"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.schedule.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def total_steps(self) -> int:
        return self.refiner_pretrain_steps + self.discriminator_pretrain_steps + self.adversarial_steps

    def phase_of(self, step: int) -> Phase:
        """The phase step number ``step`` (counted from 0) runs in."""
        if step < self.refiner_pretrain_steps:
            return Phase.REFINER_PRETRAIN
        if step < self.refiner_pretrain_steps + self.discriminator_pretrain_steps:
            return Phase.DISCRIMINATOR_PRETRAIN
        return Phase.ADVERSARIAL

    @property
    def phase(self) -> Phase:
        """The phase of the step about to run."""
        return self.phase_of(self.step)

    @property
    def network(self) -> Network:
        """Which network the current step trains."""
        phase = self.phase
        if phase is Phase.REFINER_PRETRAIN:
            return REFINER
        if phase is Phase.DISCRIMINATOR_PRETRAIN:
            return DISCRIMINATOR
        return REFINER if self.cycle_pos < self.k_g else DISCRIMINATOR

    def advance(self, d_loss: float | None = None) -> None:
        """Marks the current step done (pass D's loss after a discriminator step)."""
        network, adversarial = self.network, self.phase is Phase.ADVERSARIAL
        if network == REFINER:
            self.refiner_steps += 1
        else:
            self.discriminator_steps += 1
        self.step += 1
        if not adversarial:
            return
        if network == DISCRIMINATOR and d_loss is not None:
            self.cycle_d_loss_sum += float(d_loss)
            self.cycle_d_steps += 1
        self.cycle_pos += 1
        if self.cycle_pos == self.k_g + self.k_d:
            self.cycle_pos = 0
            self._adapt_k_g()

    def _adapt_k_g(self) -> None:
        if self.adapts and self.cycle_d_steps:
            mean_d_loss = self.cycle_d_loss_sum / self.cycle_d_steps
            if mean_d_loss < self.adaptive.d_loss_low:
                self.k_g = min(self.k_g + 1, self.adaptive.k_g_max)
            elif mean_d_loss > self.adaptive.d_loss_high:
                self.k_g = max(self.k_g - 1, self.adaptive.k_g_min)
        self.cycle_d_loss_sum, self.cycle_d_steps = 0.0, 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        """Restores progress; step counts and K_d come from the config, so a resumed
        run may be given a longer schedule. An adapted K_g is progress and is kept."""
        for key in _PROGRESS:
            setattr(self, key, state[key])
        if self.adapts:
            self.k_g = state["k_g"]


_PROGRESS = ("step", "cycle_pos", "refiner_steps", "discriminator_steps", "cycle_d_loss_sum", "cycle_d_steps")
