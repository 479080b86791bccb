"""The global RNG states (torch CPU and CUDA, numpy, python), for checkpoints.

The history buffer draws from the global torch RNG (``torch.randperm``), so a resumed run
must continue that RNG's stream exactly where the interrupted run left it; numpy's and
python's are saved too, for user code that draws from them. Restoring them at the
first training step after a resume (not when the checkpoint is read) makes whatever
runs in between (sanity validation, loader start-up) irrelevant.

Everything is stored as tensors and plain python values, so checkpoints still load with
``torch.load(weights_only=True)`` (``SimGAN.load_from_checkpoint``'s default).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def collect_rng_states() -> dict[str, Any]:
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"algorithm": str(algorithm), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["algorithm"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = states.get("torch_cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
