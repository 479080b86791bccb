"""Start-up checks that the model and the data fit together, each with one clear message."""

from __future__ import annotations

from simgan.errors import ConfigError


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
