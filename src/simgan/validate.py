"""Start-up checks that the model and the data fit together, each with one clear message.

Run by ``simgan.training.train`` after the config is instantiated and before anything
is rendered, converted or trained; each failure is a :class:`ConfigError` naming the
setting (printed as ``error: ...``, exit status 2). The schedule's own checks (K_g, K_d
>= 1, step counts >= 0) run when the model is built. A setting that is valid but slow
on this machine (bf16 on a CPU without native bf16) gets a warning instead.
"""

from __future__ import annotations

import logging

from simgan.errors import ConfigError
from simgan.utils.cpu import cpu_has_native_bf16

log = logging.getLogger("simgan")


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
    with it would otherwise train ~10x slower than it needs to, silently.
    """
    if device_type != "cpu" or "bf16" not in str(precision) or cpu_has_native_bf16() is not False:
        return None
    message = (f"trainer.precision={precision} on a CPU without native bf16 (no AVX512-BF16 or AMX): convolutions "
               "run many times slower than in fp32 (docs/benchmark.md); set trainer.precision=32-true")
    log.warning(message)
    return message
