"""simgan.evaluation: is a trained refiner any good? Realism, labels, downstream accuracy.

``python src/evaluate.py ckpt_path=...`` runs :func:`simgan.evaluation.run.evaluate`, which
measures automatically what the paper measured by hand (Shrivastava et al., CVPR 2017):

- realism (Sec. 3.1, the "visual Turing test": people told real from refined eyes 51.7% of
  the time, vs 81% for raw synthetic): a fresh-CNN two-sample test (C2ST) and KID, each
  for synthetic-vs-real *and* refined-vs-real, so the gap refinement closed is visible;
- label preservation (Sec. 3.1, Fig. 5, pupil centres moved 1.1 +/- 0.8 px on 55-px-wide
  eyes): the pupil shift and gaze drift a fixed estimator reads off refined vs synthetic
  images (eyes: labels ``pupil`` and ``gaze``);
- the downstream protocol (Sec. 3.2, Tables 2/3): a task model trained on raw synthetic,
  on refined synthetic, and on real labeled images, each tested on the same held-out real
  images (digits: label ``digit`` vs the MNIST test split).

One concern per module, in the order :mod:`~simgan.evaluation.run` uses them. Every number
comes from :mod:`simgan.metrics` (the one implementation of each metric, shared with the
training-time callback); this package chooses the images, runs the stages and writes
the results:

- ``inputs``: the data it was trained on and the image sets
  (:func:`simgan.data.subsets.first_images`); the refiner and the check that it fits the
  data come from :mod:`simgan.checkpoint`.
- ``realism``: C2ST and KID for both pairs, with the same real images and seed.
- ``labels``: pupil shift / gaze drift, per image (for histograms) and summarised.
- ``downstream``: the training and test sets of the three task models (the MNIST split's
  labeled side comes from :class:`simgan.data.mnist.MnistSplit`).
- ``plots``, ``report``: PNGs, ``metrics.json``, ``report.md``, and the same to loggers.

Adding a measurement: its function in :mod:`simgan.metrics` (see there), and a line in
``run.py`` that calls it when the data has what it needs and puts its numbers in the
summary.
"""
