"""simgan.bench: the platform against a plain PyTorch loop, and the fast paths.

``python -m simgan.bench`` (options: ``--help``; guide and measured tables:
``docs/benchmark.md``) measures, in one process, with one seed and the same batches:

1. ``reference``: SimGAN's refiner and discriminator steps (with the history buffer) as
   a plain PyTorch loop, the same maths as :class:`simgan.module.SimGAN`;
2. ``platform_loop``: the LightningModule driven by a ``Trainer``;
3. ``pipeline``: HDF5 stores -> DataModule with workers -> batches/s;
4. ``refine_export``: refine export against the bare refiner forward, and its peak
   memory per store size in fresh processes (``refine_memory``);

for each variant of fast paths (``settings``: eager, channels_last, torch.compile, bf16
autocast, fused optimizers and combinations), interleaved and repeated
(``train_bench``), timed per step (``timing``, ``window``), with FLOPs counted by torch
(``flops``), and written as JSON + markdown (``report``) with the machine (``machine``).

To benchmark another fast path: add its flag to ``settings.Variant`` and apply it in
both ``reference.PlainLoop`` and ``platform_loop.build_module``/``PlatformLoop.run``.
"""
