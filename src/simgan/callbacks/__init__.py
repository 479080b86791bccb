"""simgan.callbacks: Lightning callbacks of a training run.

- ``refined_grid``: the synthetic | refined | real image grids.
- ``validation_metrics``: cheap realism / label metrics at every validation. The
  measurements are :mod:`simgan.metrics`' (``c2st``, ``label_shift``, ``label_flip``),
  with the knob names of ``conf/evaluate.yaml``; the callback adds only the
  ``val/realism_gap`` proxy that weighs them into one number to monitor.
- ``progress``: the console (a bar or log lines over the whole schedule, by phase, with
  R's and D's scores) and the warnings it keeps out of it.

Both image callbacks take their fixed images from :func:`simgan.data.subsets.first_images`
(the first ``n_images`` of each validation split, topped up from training), as the
evaluation does.
"""
