"""Reliability of long runs: exact resume, clean shutdown, NaN guard, full disks, no network hangs.

One concern per module (see docs/reliability.md for the user's view):

- :mod:`.rng`: the global RNG states that go into every checkpoint.
- :mod:`.finite`: finding NaN/inf in a step's tensors or in a checkpoint.
- :mod:`.partials`: the staging files of atomic writes (per process; killed writers' removed).
- :mod:`.disk`: a full disk as one error naming the file, checked before large writes.
- :mod:`.checkpoint_io`: atomic checkpoint writes that refuse non-finite states.
- :mod:`.signals`: SIGTERM/SIGINT recorded, acted on where stopping is safe (conversions, refine).
- :mod:`.shutdown`: SIGTERM/SIGINT (and SLURM's requeue signal) handled at training step boundaries.
- :mod:`.resume`: ``ckpt_path=last``, the checks of a checkpoint to resume, the printed resume command.
- :mod:`.wandb_guard`: an online W&B run that cannot reach its server goes offline.
- :mod:`.errors`: the two ways a run stops early (diverged, interrupted).

The data order's part lives with the data (:mod:`simgan.data.samplers`,
:class:`simgan.data.datamodule.SimGANDataModule`).
"""
