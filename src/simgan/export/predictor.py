"""R as a predict-only LightningModule: store pixels in, refined store pixels out.

``predict_step`` does on the device what a training batch sees and what a store holds:

- normalize exactly as :class:`~simgan.data.store.StoreDataset` does,
  ``x = 2 (p - lo) / (hi - lo) - 1`` clamped to [-1, 1] (the refiner's tanh range),
- refine, ``y = R(x)`` (under the trainer's precision; quantized in float32),
- quantize back with the input's ``pixel_range``: ``p' = (y + 1) (hi - lo) / 2 + lo``,
  rounded and clipped to the dtype for integer stores, so the output has the input's
  dtype and value convention and every downstream reader treats both alike.

A NaN/inf input pixel or refined value is a :class:`~simgan.errors.DataError` (clamping
would hide it: a diverged refiner wrote an all-zero store with exit status 0).

Moving uint8 in and out instead of float32 is 4x fewer bytes over PCIe.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from simgan.errors import DataError

_TORCH_OUT = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.int32, np.dtype(np.float32): torch.float32}


class RefinePredictor(LightningModule):
    def __init__(self, refiner: nn.Module, pixel_range: tuple[float, float], dtype: np.dtype,
                 compile: bool = False, throttle_s: float = 0.0, input_path: str = "the input",
                 checkpoint_path: str = "the checkpoint"):
        super().__init__()
        self.input_path, self.checkpoint_path = str(input_path), str(checkpoint_path)  # for error messages
        self.refiner = refiner
        lo, hi = (float(v) for v in pixel_range)
        self.lo, self.hi = lo, hi
        self.scale = 2.0 / (hi - lo)
        self.offset = -lo * self.scale - 1.0
        self.dtype_out = np.dtype(dtype)
        if self.dtype_out.kind in "iu":
            info = np.iinfo(self.dtype_out)
            self.clip = (max(lo, float(info.min)), min(hi, float(info.max)))
        else:
            self.clip = (lo, hi)
        # Kept off the module tree (like simgan.module.SimGAN) so nothing sees _orig_mod.
        object.__setattr__(self, "_refine", torch.compile(refiner) if compile else refiner)
        self.throttle_s = float(throttle_s)  # test-only: makes a run slow enough to kill midway

    # One new tensor each, the rest in place: for a small refiner these element-wise
    # passes are a visible share of the time per batch.
    def normalize(self, raw: Tensor) -> Tensor:
        return raw.to(torch.float32, copy=True).mul_(self.scale).add_(self.offset).clamp_(-1.0, 1.0)

    def quantize(self, refined: Tensor) -> Tensor:
        pixels = refined.float().add(1.0).mul_((self.hi - self.lo) / 2.0).add_(self.lo)
        if self.dtype_out.kind in "iu":
            pixels = pixels.round_()
        return pixels.clamp_(*self.clip).to(_TORCH_OUT[self.dtype_out])

    def forward(self, raw: Tensor) -> Tensor:
        return self.quantize(self._refine(self.normalize(raw)))

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        raw = batch["image"]
        where = f"samples {int(batch['start'])}..{int(batch['stop']) - 1} of {self.input_path}"
        if raw.is_floating_point() and not bool(torch.isfinite(raw).all()):
            raise DataError(f"{where}: NaN or inf pixels in the input store; it must hold finite values")
        refined = self._refine(self.normalize(raw))
        # One host sync per batch: a refiner that outputs NaN/inf would otherwise be written
        # as clamped (or, for integer stores, arbitrary) pixels, silently.
        if not bool(torch.isfinite(refined).all()):
            raise DataError(f"{where}: the refiner of {self.checkpoint_path} outputs NaN/inf for them; nothing is "
                            "written for these samples (use an earlier checkpoint, or trainer.precision=32-true)")
        out = {"image": self.quantize(refined), "chunk": batch["chunk"], "start": batch["start"],
               "stop": batch["stop"]}
        if self.throttle_s:
            time.sleep(self.throttle_s)
        return out
