"""simgan.callbacks: Lightning callbacks of a training run.

- ``refined_grid``: the synthetic | refined | real image grids.
- ``validation_metrics``: cheap realism / label metrics at every validation.
- ``progress``: the console (a bar or log lines over the whole schedule, by phase, with
  R's and D's scores) and the warnings it keeps out of it.
"""
