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

from dataclasses import asdict, dataclass, field

REFINER, DISCRIMINATOR = "refiner", "discriminator"
PHASES = ("refiner_pretrain", "discriminator_pretrain", "adversarial")


@dataclass
class AdaptiveKg:
    enabled: bool = False
    k_g_min: int = 1
    k_g_max: int = 50
    d_loss_low: float = 0.5
    d_loss_high: float = 1.2


@dataclass
class PhaseSchedule:
    refiner_pretrain_steps: int = 1000
    discriminator_pretrain_steps: int = 200
    adversarial_steps: int = 10000
    k_g: int = 2
    k_d: int = 1
    adaptive: AdaptiveKg = field(default_factory=AdaptiveKg)
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
        for name in ("refiner_pretrain_steps", "discriminator_pretrain_steps", "adversarial_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"model.schedule.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("k_g", "k_d"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.schedule.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def total_steps(self) -> int:
        return self.refiner_pretrain_steps + self.discriminator_pretrain_steps + self.adversarial_steps

    @property
    def phase(self) -> str:
        if self.step < self.refiner_pretrain_steps:
            return PHASES[0]
        if self.step < self.refiner_pretrain_steps + self.discriminator_pretrain_steps:
            return PHASES[1]
        return PHASES[2]

    @property
    def network(self) -> str:
        """Which network the current step trains."""
        phase = self.phase
        if phase == PHASES[0]:
            return REFINER
        if phase == PHASES[1]:
            return DISCRIMINATOR
        return REFINER if self.cycle_pos < self.k_g else DISCRIMINATOR

    def advance(self, d_loss: float | None = None) -> None:
        """Marks the current step done (pass D's loss after a discriminator step)."""
        network, adversarial = self.network, self.phase == PHASES[2]
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
        if self.adaptive.enabled and self.cycle_d_steps:
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
        if self.adaptive.enabled:
            self.k_g = state["k_g"]


_PROGRESS = ("step", "cycle_pos", "refiner_steps", "discriminator_steps", "cycle_d_loss_sum", "cycle_d_steps")
