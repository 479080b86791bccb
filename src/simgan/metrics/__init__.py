"""simgan.metrics: how good is a refiner? One metric per module, tensors in [-1, 1].

All take float images ``N x C x H x W`` in [-1, 1] (what :class:`~simgan.data.store.StoreDataset`
returns), train whatever they train from a seed, run within a time budget and show a
tqdm bar while they work.

- :mod:`~simgan.metrics.c2st` realism, as the paper's visual Turing test (Sec. 3.1,
  517/1000 = 51.7% by people): held-out accuracy of a fresh CNN telling two sets apart.
- :mod:`~simgan.metrics.kid` realism as a feature-distribution distance (KID on frozen
  EfficientNet-Lite0 features from :mod:`~simgan.metrics.features`; comparable within
  this project only).
- :mod:`~simgan.metrics.pupil` label preservation for eyes (Sec. 3.1 / Eq. 4): how far
  refinement moves the predicted pupil (px) and gaze (deg).
- :mod:`~simgan.metrics.downstream` the paper's protocol (Sec. 3.2, Tables 2/3): train a
  task model on synthetic / refined / real images, test on held-out real ones.

Adding a metric: a new module with one public function that takes image tensors (and a
``seed`` if anything is random), returns a flat dict of floats, and validates its input
with :func:`simgan.metrics._common.check_images`; plus a test on a constructed case
where the right answer is known.
"""
