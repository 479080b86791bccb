"""Converters from public dataset formats to the project's HDF5 store.

Run ``python -m simgan.data.convert FORMAT SRC DST [--size HxW] [--overwrite] [--limit N]``;
``python -m simgan.data.convert FORMAT --help`` lists a format's options and
``docs/data_formats.md`` describes each source layout and the labels it yields.

To add a format: write a module here with ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``convert(src, dst, *, size, overwrite, limit, **options) -> dict`` that feeds a
generator of ``(images N x C x H x W, {label: N x ...})`` batches to
:func:`simgan.data.convert._common.write_batches` (streaming, atomic, provenance
attributes) and raises :class:`~simgan.errors.DataError` naming the file on bad input;
then list it in :data:`FORMATS`.
"""

from simgan.data.convert import folder, kaggle_gaze, mpiigaze, npz, nyu_hand, unityeyes

FORMATS = {m.NAME: m for m in (kaggle_gaze, unityeyes, mpiigaze, nyu_hand, folder, npz)}

__all__ = ["FORMATS"]
