"""Start-up checks of the settings, and that the model and the data fit together.

Each failure is a :class:`ConfigError` naming the setting (printed as ``error: ...``,
exit status 2), before anything is rendered, converted or trained:

- :func:`check_settings`, on the composed config before anything is instantiated: the
  types and ranges of the numeric (and a few enumerated) settings under ``model.*`` and
  ``data.*``, by the setting's own name wherever it sits (``lr`` > 0, ``*_steps`` an
  integer >= 0, ``decay`` in [0, 1), ...), so a setting added later with a familiar name
  is checked too and unknown ones pass; and that ``trainer.max_steps`` is not set (the
  schedule sets the run's length).
- :func:`check_model_fits_data`, once the model and the data exist.

A setting that is valid but slow on this machine (bf16 on a CPU without native bf16)
gets a warning instead.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, NamedTuple

from omegaconf import DictConfig, OmegaConf

from simgan.errors import ConfigError
from simgan.losses import LOSSES
from simgan.models.refiner import PADDING_MODES
from simgan.utils.cpu import cpu_has_native_bf16

log = logging.getLogger("simgan")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    # inf passes: a deliberately huge value is the NaN guard's business (it stops the run)
    return (_is_int(v) or isinstance(v, float)) and not math.isnan(v)


class _Rule(NamedTuple):
    """A valid value: of a type (``is_type``, said as ``type_name``), within a range (if any)."""

    is_type: Callable[[Any], bool]
    type_name: str
    in_range: Callable[[Any], bool] = lambda v: True
    range_text: str = ""

    def problem(self, value: Any) -> str | None:
        if not self.is_type(value):
            return f"must be {self.type_name}{' ' + self.range_text if self.range_text else ''}"
        if not self.in_range(value):
            return f"must be {self.range_text}"
        return None


_POSITIVE = _Rule(_is_number, "a number", lambda v: v > 0, "> 0")
_NON_NEGATIVE = _Rule(_is_number, "a number", lambda v: v >= 0, ">= 0")
_COUNT = _Rule(_is_int, "an integer", lambda v: v >= 0, ">= 0")
_AT_LEAST_ONE = _Rule(_is_int, "an integer", lambda v: v >= 1, ">= 1")
_NUMBER = _Rule(_is_number, "a number")
_BOOL = _Rule(lambda v: isinstance(v, bool), "true or false")
_FRACTION = _Rule(_is_number, "a number", lambda v: 0 <= v < 1, "in [0, 1)")
# By the setting's last name component.
RULES: dict[str, _Rule] = {
    "lr": _POSITIVE, "eps": _POSITIVE,
    "k_g": _AT_LEAST_ONE, "k_d": _AT_LEAST_ONE, "k_g_min": _AT_LEAST_ONE, "k_g_max": _AT_LEAST_ONE,
    "batch_size": _AT_LEAST_ONE, "channels": _AT_LEAST_ONE, "height": _AT_LEAST_ONE, "width": _AT_LEAST_ONE,
    "num_blocks": _AT_LEAST_ONE, "kernel_size": _AT_LEAST_ONE,
    "history_size": _COUNT, "num_workers": _COUNT, "n": _COUNT,
    "r1_gamma": _NON_NEGATIVE, "weight_decay": _NON_NEGATIVE, "lambda_reg": _NON_NEGATIVE,
    "d_loss_low": _NUMBER, "d_loss_high": _NUMBER,
    "decay": _FRACTION,
    "enabled": _BOOL, "spectral_norm": _BOOL, "compile": _BOOL, "channels_last": _BOOL,
    "grad_clip": _POSITIVE,
    "widths": _Rule(lambda v: isinstance(v, list) and bool(v) and all(_is_int(w) for w in v), "a list of integers",
                    lambda v: all(w >= 1 for w in v), "(each >= 1)"),
    "betas": _Rule(lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(b) for b in v),
                   "two numbers", lambda v: all(0 <= b < 1 for b in v), "in [0, 1)"),
}
# Settings with a few possible values, by their full name.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.loss": LOSSES,
    "model.refiner.padding": PADDING_MODES,
}
# Optional settings: null means "not used" (the rule applies to a value only).
_NULLABLE = {"n", "num_workers", "grad_clip", "betas", "eps", "weight_decay", "r1_gamma", "decay"}


def _rule(name: str) -> _Rule | None:
    leaf = name.rsplit(".", 1)[-1]
    if leaf in RULES:
        return RULES[leaf]
    if leaf.endswith("_steps"):
        return _COUNT
    if leaf.endswith("_lr"):
        return _POSITIVE
    if leaf.startswith("lambda_"):
        return _NON_NEGATIVE
    return None


def _leaves(node: Any, prefix: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).startswith("_"):  # _target_, _partial_: Hydra's, not settings
                continue
            name = f"{prefix}.{key}"
            if isinstance(value, dict):
                yield from _leaves(value, name)
            else:
                yield name, value


def check_settings(cfg: DictConfig) -> None:
    """Types and ranges of the numeric and enumerated settings; ``trainer.max_steps`` unset."""
    for section in ("model", "data"):
        node = cfg.get(section)
        if not isinstance(node, DictConfig):
            continue
        try:
            plain = OmegaConf.to_container(node, resolve=True)
        except Exception as err:  # an interpolation that does not resolve: Hydra's own message says which
            raise ConfigError(f"{section}: cannot resolve the settings ({' '.join(str(err).split())})") from None
        for name, value in _leaves(plain, section):
            leaf = name.rsplit(".", 1)[-1]
            if name in CHOICES:
                if value not in CHOICES[name]:
                    raise ConfigError(f"{name} must be one of {', '.join(CHOICES[name])}, got {value!r}")
                continue
            rule = _rule(name)
            if rule is None or (value is None and leaf in _NULLABLE):
                continue
            problem = rule.problem(value)
            if problem:
                raise ConfigError(f"{name} {problem}, got {value!r}")
    check_run_length(cfg)


def check_run_length(cfg: DictConfig) -> None:
    """The schedule sets the run's length: ``trainer.max_steps`` would be silently overridden."""
    trainer = cfg.get("trainer") or {}
    max_steps = trainer.get("max_steps") if isinstance(trainer, DictConfig) else None
    if max_steps is None or max_steps == -1:
        return
    schedule = OmegaConf.select(cfg, "model.schedule") or {}
    keys = ("refiner_pretrain_steps", "discriminator_pretrain_steps", "adversarial_steps")
    parts = " + ".join(f"model.schedule.{k}={schedule.get(k)}" for k in keys)
    raise ConfigError(f"trainer.max_steps={max_steps}: the run's length is set by the schedule ({parts}); "
                      "set those instead and leave trainer.max_steps unset")


def check_model_fits_data(model, datamodule) -> None:
    """The networks must take the data's images (channels, size >= D's receptive field)."""
    c, h, w = datamodule.image_shape
    model_shape = tuple(model.hparams.image_shape)
    if model_shape != (c, h, w):
        raise ConfigError(f"model.image_shape={list(model_shape)} does not match the data's C x H x W = {[c, h, w]} "
                          "(data.channels/height/width)")
    for name in ("refiner", "discriminator"):
        net_c = getattr(getattr(model, name), "channels", None)
        if net_c is not None and net_c != c:
            raise ConfigError(f"model.{name}.channels={net_c} but the data has {c} channel(s) (data.channels)")
    field = getattr(model.discriminator, "receptive_field", lambda: 0)()
    if min(h, w) < field:
        raise ConfigError(f"data.height x data.width = {h}x{w} is smaller than the discriminator's receptive field "
                          f"({field} px): D would see no complete patch; use larger images or a smaller D")
    if hasattr(datamodule, "check_sizes"):
        datamodule.check_sizes()
    check_history_fits_batch(model.history.size, datamodule.batch_size)


def check_history_fits_batch(history_size: int, batch_size: int) -> None:
    """``history_size`` is 0 (no history) or a multiple of ``batch_size // 2``.

    Each discriminator step stores ``batch_size // 2`` refined images per device and
    draws as many from the buffer (Sec. 2.3). A multiple fills the buffer in whole
    steps, so "the buffer is full" happens at one known step (history_size / (b/2)
    D steps), and it can always supply the full half-batch; a buffer smaller than
    ``b/2`` could never supply it.
    """
    half = max(batch_size // 2, 1)
    if history_size and history_size % half:
        near = sorted({max(history_size // half, 1) * half, (history_size // half + 1) * half})
        raise ConfigError(
            f"model.history_size={history_size} must be 0 or a multiple of data.batch_size/2 = {half} "
            f"(each discriminator step stores {half} refined images per device); e.g. "
            + " or ".join(f"model.history_size={n}" for n in near))


def warn_if_precision_is_slow_here(device_type: str, precision: str) -> str | None:
    """A warning (logged, returned) for bf16 on a CPU without native bf16: it runs, many times slower.

    Not an error: the run is correct, and a user may want bf16 numerics on purpose. The
    paper-scale gaze experiment asks for bf16-mixed (right on GPUs), so ``trainer=cpu``
    with it would otherwise train ~14x slower than it needs to, silently (the refiner's main
    convolution: 7.6 GFLOP/s in bf16 against 108.7 in fp32 on an AVX2 CPU, docs/benchmark.md).
    """
    if device_type != "cpu" or "bf16" not in str(precision) or cpu_has_native_bf16() is not False:
        return None
    message = (f"trainer.precision={precision} on a CPU without native bf16 (no AVX512-BF16 or AMX): convolutions "
               "run many times slower than in fp32 (docs/benchmark.md); set trainer.precision=32-true")
    log.warning(message)
    return message
