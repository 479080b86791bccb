"""Rank 0's last step: the chunk files -> one store, in input order, atomically.

Writes ``.<output name>.<pid>.partial`` (:mod:`simgan.reliability.partials`) in the
store layout (:mod:`simgan.data.store`): ``/images`` with the input's dtype and the
chunking of every store writer and the refine export's gzip filters (:mod:`simgan.export.codec`), filled by copying each chunk file's
already-compressed HDF5 chunks (``write_direct_chunk``: no second compression, one
chunk file in memory at a time); ``/labels`` copied whole from the input by HDF5 itself
(index i of every label still belongs to image i: the output has every input index
exactly once, in input order, checked per chunk file); the root attributes of the
input, then the store's own and the provenance of the refinement. Only then is it
renamed onto ``<output>``. A full disk is one error naming the output;
the chunk files stay, so ``resume=true`` merges them once there is room.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from simgan.data.store import STORE_FORMAT, STORE_VERSION
from simgan.export.codec import GZIP_LEVEL, image_dataset_options
from simgan.export.parts import Parts
from simgan.reliability import partials
from simgan.reliability.disk import no_space, out_of_space, require_space


def merge(parts: Parts, source: dict, output: Path, provenance: Mapping[str, object], level: int = GZIP_LEVEL) -> Path:
    """``source`` is :func:`simgan.data.store.check_store`'s metadata of the input."""
    partial = partials.partial_path(output)
    partials.remove_orphans(output)
    shape, dtype, count = tuple(source["shape"]), np.dtype(source["dtype"]), int(source["count"])
    kept, then = f"every refined chunk is kept in {parts.dir}", "rerun with resume=true"
    options = image_dataset_options(shape, dtype, level)
    rows = options["chunks"][0]
    try:
        with h5py.File(source["path"], "r") as src, h5py.File(partial, "w") as dst:
            images = dst.create_dataset("images", shape=(count, *shape), maxshape=(None, *shape), dtype=dtype,
                                        **options)
            for chunk in range(parts.num_chunks):
                start, _ = parts.bounds(chunk)
                blob, offsets = parts.read(chunk, rows)
                require_space(output, blob.nbytes, f"the refined store {output.name}", kept, then)
                for j in range(len(offsets) - 1):
                    images.id.write_direct_chunk((start + j * rows, *([0] * len(shape))),
                                                 blob[offsets[j]:offsets[j + 1]].tobytes())
            if "labels" in src:
                src.copy(src["labels"], dst, "labels")
            else:
                dst.create_group("labels")
            dst.attrs.update({k: v for k, v in src.attrs.items()})
            dst.attrs.update({
                "format": STORE_FORMAT,
                "version": STORE_VERSION,
                "count": count,
                "pixel_range": np.asarray(source["pixel_range"], dtype=np.float64),
                "label_names": json.dumps(sorted(dst["labels"])),
                "label_shapes": json.dumps({k: list(dst["labels"][k].shape[1:]) for k in dst["labels"]}),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            })
            for key, value in provenance.items():
                dst.attrs[key] = value if isinstance(value, (int, float, np.ndarray)) else str(value)
    except BaseException as err:
        partial.unlink(missing_ok=True)
        if out_of_space(err):
            raise no_space(output, f"the refined store {output.name}", kept=kept, then=then) from None
        raise
    os.replace(partial, output)
    return output
