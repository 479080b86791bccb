"""simgan.export: a trained refiner -> a refined, labeled training set.

``python src/refine.py ckpt_path=... input=<store.h5> output=<refined.h5>`` runs
:func:`simgan.export.refine.refine`, one concern per module, in the order they act (R itself
is rebuilt from the checkpoint by :func:`simgan.checkpoint.load_refiner`):

- ``checks``: every bad input refused before any work, one message each.
- ``parts``: ``<output>.parts/``, one atomic file per finished chunk (what resume reuses).
- ``data``: each rank's chunks, read a contiguous batch at a time.
- ``predictor``: normalize -> R -> quantize back to the input's dtype, on the device.
- ``writer``: the prediction writer; compresses each HDF5 chunk in threads as it fills (``codec``).
- ``merge``: rank 0 joins the chunk files into the store, in input order, atomically.
- ``contact_sheet``, ``progress``: ``<output>.png``; a bar in images/s.
- ``heap``: glibc keeps the forward pass's freed activations for the next batch.
"""
