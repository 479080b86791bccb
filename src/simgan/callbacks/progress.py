"""The training console: where the run is in its schedule, in which phase, and how R and D do.

Lightning's bars count batches of an epoch, and a run here is steps, not epochs
(``max_epochs=-1``), so they showed ``Epoch 0/-2`` and nothing of the three phases.
:func:`progress_bar` (the ``progress_bar`` entry of ``conf/callbacks/default.yaml``)
gives instead:

- on a terminal, :class:`ScheduleRichBar`: one rich bar over the whole schedule
  (``schedule.total_steps``, resumed runs start where they were), described by the
  phase (refiner pretraining / discriminator pretraining / adversarial), with R's and
  D's losses and D's accuracy on real and refined patches;
- otherwise (a log file, a batch job), :class:`ScheduleLogLines`: the same facts as one
  log line every ``every_n_steps`` steps (``trainer.log_every_n_steps`` by default),
  through the ``simgan`` logger, so they also reach ``<run>/train.log``.

Both read the module's :class:`~simgan.schedule.PhaseSchedule` and ``_latest_logs``
(each scalar's value at its network's last step) directly: the logged ``train/*``
metrics exist only at logging steps.

The run's console is also kept free of warnings every run printed on purpose:

- the frozen regularizer and R's weight average are in eval mode by design:
  Lightning's "Found N module(s) in eval mode" warning is silenced only when the
  modules in eval mode are exactly those (any other one still warns);
- Lightning's own use of ``torch.utils._pytree.LeafSpec``, deprecated by torch;
- the model summary's "Total FLOPs: 0" (Lightning counts FLOPs only for a module with an
  ``example_input_array``; the GAN's step is not one forward pass): :class:`ModelSummary`
  prints the summary without the FLOPs column and line.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from typing import Any

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

from simgan.schedule import Phase

log = logging.getLogger("simgan")

PHASE_NAMES = {
    Phase.REFINER_PRETRAIN: "refiner pretraining",
    Phase.DISCRIMINATOR_PRETRAIN: "discriminator pretraining",
    Phase.ADVERSARIAL: "adversarial",
}
# (shown name, key in the module's _latest_logs)
SHOWN = (("R loss", "train/r_loss"), ("D loss", "train/d_loss"),
         ("D acc real", "train/d_acc_real"), ("D acc refined", "train/d_acc_refined"))
# submodules that are in eval mode on purpose: the frozen psi and R's weight average
INTENDED_EVAL = ("regularizer", "refiner_ema")

# torch deprecated LeafSpec; the call is inside Lightning's own _pytree helper
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class _NotOurSummaryNotice(logging.Filter):
    """Drops Lightning's notice that it skips its default summary because ours is there (it is on purpose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Trainer already configured with model summary callbacks")
                    and __name__ in message)


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_NotOurSummaryNotice())


def phase_name(pl_module: Any, finished: bool = False) -> str:
    """The phase the next step runs in (a live bar), or with ``finished`` the one of the step just done (a log line)."""
    schedule = getattr(pl_module, "schedule", None)
    if schedule is None:
        return "training"
    phase = schedule.phase if not finished or schedule.step == 0 else schedule.phase_of(schedule.step - 1)
    return PHASE_NAMES.get(phase, "training")


def scores(pl_module: Any) -> dict[str, float]:
    """R's and D's latest losses and D's accuracies, those that exist yet (D has none before its first step)."""
    latest = getattr(pl_module, "_latest_logs", None) or {}
    return {name: float(latest[key]) for name, key in SHOWN if key in latest}


def total_steps(trainer: Any, pl_module: Any) -> int:
    schedule = getattr(pl_module, "schedule", None)
    return int(getattr(schedule, "total_steps", 0) or trainer.max_steps)


def silence_intended_eval_mode_warning(pl_module: Any) -> None:
    """Silences Lightning's eval-mode warning for this run if only the intended modules are in eval mode."""
    in_eval = [name for name, module in pl_module.named_modules() if not module.training]
    if in_eval and all(name.split(".")[0] in INTENDED_EVAL for name in in_eval):
        warnings.filterwarnings("ignore", message=rf"Found {len(in_eval)} module\(s\) in eval mode at the start")


class _Quiet:
    """Silences the intended eval-mode warning at fit start (Lightning warns before on_train_start)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        silence_intended_eval_mode_warning(pl_module)
        super().on_fit_start(trainer, pl_module)  # type: ignore[misc]


class QuietConsole(_Quiet, Callback):
    """No bar (``trainer.enable_progress_bar=false``), the same warnings silenced."""


class ScheduleRichBar(_Quiet, RichProgressBar):
    """Lightning's rich bar, counting the steps of the whole schedule and named by the phase."""

    @property
    def total_train_batches(self) -> int:
        return total_steps(self.trainer, self.trainer.lightning_module)

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{phase_name(self.trainer.lightning_module):<25}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # the bar's position is the global step (one optimizer step per batch, whatever the epoch)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=self._get_train_description(0))

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        return {name: f"{value:.3f}" for name, value in scores(pl_module).items()}


class ScheduleLogLines(_Quiet, ProgressBar):
    """One log line every ``every_n_steps`` training steps: step / total, phase, losses, accuracies, speed."""

    def __init__(self, every_n_steps: int | None = None):
        super().__init__()
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._started: tuple[float, int] | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer, pl_module) -> None:
        self._started = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, total_steps(trainer, pl_module)
        every = max(1, int(self.every_n_steps or trainer.log_every_n_steps or 1))
        if self._enabled and (step % every == 0 or step >= total):
            log.info(self.line(trainer, pl_module))

    def line(self, trainer, pl_module) -> str:
        step, total = trainer.global_step, total_steps(trainer, pl_module)
        shown = "  ".join(f"{name} {value:.3f}" for name, value in scores(pl_module).items())
        text = f"step {step}/{total} ({100 * step / max(total, 1):.0f}%)  {phase_name(pl_module, finished=True)}"
        if shown:
            text += f"  |  {shown}"
        if self._started is not None:
            seconds, first = time.perf_counter() - self._started[0], self._started[1]
            if step > first and seconds > 0:
                rate = (step - first) / seconds
                text += f"  |  {rate:.2f} steps/s, {_duration((total - step) / rate)} left"
        return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def progress_bar(every_n_steps: int | None = None, refresh_rate: int = 1, enabled: bool = True) -> Callback:
    """The rich bar on a terminal, periodic log lines otherwise; no bar when not ``enabled``.

    ``enabled`` follows ``trainer.enable_progress_bar``: Lightning refuses a progress-bar
    callback when that is false.
    """
    if not enabled:
        return QuietConsole()
    if sys.stdout.isatty():
        return ScheduleRichBar(refresh_rate=refresh_rate)
    return ScheduleLogLines(every_n_steps=every_n_steps)


def model_summary(max_depth: int = 1, enabled: bool = True) -> Callback:
    """:class:`ModelSummary`, or nothing when ``trainer.enable_model_summary`` is false
    (Lightning would still run a summary callback it is given)."""
    return ModelSummary(max_depth=max_depth) if enabled else Callback()


class ModelSummary(LightningModelSummary):
    """Lightning's model summary, logged without the FLOPs column and total (always 0 here)."""

    @staticmethod
    def summarize(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes,
                  total_flops, **summarize_kwargs) -> None:
        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes,
                                      total_flops, *columns)
        table = re.sub(r"\n[^\n]*Total Flops\s*$", "", table)
        log.info("\n" + table)
