"""simgan.metrics: how good is a refiner? The one implementation of every metric, tensors in [-1, 1].

All take float images ``N x C x H x W`` in [-1, 1] (what :class:`~simgan.data.store.StoreDataset`
returns), train whatever they train from a seed, run within a time budget and show a
tqdm bar while they work. The evaluation (:mod:`simgan.evaluation`) and the training-time
callback (:mod:`simgan.callbacks.validation_metrics`) call these functions; neither
restates a formula.

- :mod:`~simgan.metrics.c2st` realism, as the paper's visual Turing test (Sec. 3.1,
  517/1000 = 51.7% by people): held-out accuracy of a fresh CNN telling two sets apart
  (``c2st``), and the share of the raw synthetic gap refinement closed (``gap_closed``).
- :mod:`~simgan.metrics.kid` realism as a feature-distribution distance: KID on frozen
  EfficientNet-Lite0 features from :mod:`~simgan.metrics.features` (whose weights
  :func:`simgan.regularizers.efficientnet.load_lite0` loads, as for the EfficientNet psi);
  ``kid`` for a pair, ``kid_many`` for several sets against one real set. Comparable
  within this project only.
- :mod:`~simgan.metrics.pupil` label preservation for eyes (Sec. 3.1 / Eq. 4): how far
  refinement moves the predicted pupil (px) and gaze (deg), per image
  (``label_shift_per_image``) and summarised (``label_shift``).
- :mod:`~simgan.metrics.downstream` the paper's protocol (Sec. 3.2, Tables 2/3): train a
  task model on synthetic / refined / real images, test on held-out real ones
  (``downstream_scores``); and label preservation for class labels (``label_flip``).
- :mod:`~simgan.metrics.border` the zero-padding frame a refiner may paint.
- :mod:`~simgan.metrics.eye_geometry` the eye geometry (iris, lids) read off the pixels,
  to check the simulator against real eyes.
- Shared by the above: :mod:`~simgan.metrics.images` (the input check) and
  :mod:`~simgan.metrics.fitting` (seeded, time-bounded training of the small models the
  metrics train, BatchNorm recalibration, batched prediction).

Adding a metric: a function in a module here that takes image tensors (and a ``seed`` if
anything is random), returns a flat dict of floats (or one float), and validates its
input with :func:`simgan.metrics.images.check_images`; a test on a constructed case where
the right answer is known; and the one line in :func:`simgan.evaluation.run.evaluate`
that puts it in the summary (or in the callback, for a training-time number).
"""
