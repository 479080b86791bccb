"""The machine's ceiling: the refiner's dominant convolution timed on its own.

Nearly all of the refiner's FLOPs are in its ``width -> width`` 3x3 convolutions (the
paper's gaze refiner: 8 of them, 99.8% of the forward's 1.138 GFLOP per 35x55 image).
Timed alone, at the benchmark's batch and image size, forward and forward + backward
(input and weight gradients, as a training step needs), in each memory format and in
fp32 and bf16, that convolution runs at the best rate the convolution library gives
this layer on this machine. A whole refiner step also runs the small layers, the
losses and the optimizer, so no training step of these nets beats that rate. The
*ceiling* is the refiner step at the fastest forward plus the fastest backward, each
in whichever format and dtype is fastest for it (:func:`best_split_rate`), and
ceiling / plain eager is the largest speedup any mix of these fast paths can bring.
On a GPU this is also the "fraction of the measured bf16 conv peak" each variant
reaches.

A slow path (bf16 on a CPU without native bf16, ~14x slower than fp32 on AVX2) is
timed once after one warm-up call, so the measurement stays within seconds.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

from simgan.bench.flops import count_flops
from simgan.bench.settings import BenchSettings
from simgan.bench.timing import synchronize

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
SLOW_CALL_S = 1.0  # a call slower than this is timed once, after its warm-up
REPEATS = 7


def _autocast(device: torch.device, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _rate(fn, flop: int, device: torch.device) -> float:
    """GFLOP/s of ``fn``: its fastest of a few calls after a warm-up call.

    The fastest, not the median: a ceiling is what the kernel can do, and on a shared
    machine noise only ever slows a call down (medians of 5 moved by 20% between runs).
    """
    times = []
    for i in range(REPEATS + 1):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        if i == 0 and times[0] > SLOW_CALL_S:
            break  # a slow path: its warm-up (oneDNN/cuDNN set-up included) is one honest sample
    timed = times[1:] or times
    return flop / min(timed) / 1e9


def _conv_flops(s: BenchSettings, backward: bool) -> int:
    """Counted on one fp32 image on CPU (FLOPs do not depend on dtype or device), times the batch."""
    x = torch.zeros(1, s.width, s.height, s.width_px, requires_grad=True)
    w = torch.zeros(s.width, s.width, 3, 3, requires_grad=True)

    def conv():
        y = F.conv2d(x, w, padding=1)
        if backward:
            y.sum().backward()

    return count_flops(conv) * s.batch


def measure_ceiling(s: BenchSettings, device: torch.device, dtypes: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    """GFLOP/s of the refiner's ``width -> width`` 3x3 convolution, per format, dtype and pass."""
    g = torch.Generator().manual_seed(s.seed)
    base_x = torch.randn(s.batch, s.width, s.height, s.width_px, generator=g)
    base_w = torch.randn(s.width, s.width, 3, 3, generator=g) * 0.05
    flops = {backward: _conv_flops(s, backward) for backward in (False, True)}
    rows = []
    for fmt_name, fmt in FORMATS.items():
        x = base_x.to(device).contiguous(memory_format=fmt).requires_grad_()
        w = base_w.to(device).contiguous(memory_format=fmt).requires_grad_()
        for dtype in dtypes:
            for backward in (False, True):

                def call(backward=backward, dtype=dtype):
                    with _autocast(device, dtype):
                        if backward:
                            F.conv2d(x, w, padding=1).sum().backward()
                        else:
                            with torch.no_grad():
                                F.conv2d(x, w, padding=1)

                rows.append({"format": fmt_name, "dtype": dtype, "pass": "forward+backward" if backward else "forward",
                             "gflop": flops[backward] / 1e9, "gflop_per_s": _rate(call, flops[backward], device)})
                x.grad = w.grad = None
    return {"layer": f"conv3x3 {s.width}->{s.width}, batch {s.batch}, {s.height}x{s.width_px}", "rows": rows}


def best_rate(ceiling: dict, dtype: str | None = None, pass_: str = "forward+backward") -> float:
    """The fastest measured rate for a pass (over formats, and dtypes unless one is named)."""
    return max(r["gflop_per_s"] for r in ceiling["rows"]
               if r["pass"] == pass_ and (dtype is None or r["dtype"] == dtype))


def best_split_rate(ceiling: dict) -> float:
    """GFLOP/s of forward + backward if each ran in its own fastest format and dtype.

    A layer's backward time is its forward+backward time minus its forward time, per
    format and dtype; a net that ran its forward in one layout and its backward in
    another (conversions free) would take the fastest forward plus the fastest
    backward. An upper bound for any mix of these fast paths, and never below the
    best single-format rate.
    """
    rows = {(r["format"], r["dtype"], r["pass"]): r for r in ceiling["rows"]}
    seconds = lambda r: r["gflop"] / r["gflop_per_s"]  # noqa: E731
    forward, backward = [], []
    for (fmt, dtype, pass_), row in rows.items():
        if pass_ == "forward" and (fmt, dtype, "forward+backward") in rows:
            forward.append(seconds(row))
            backward.append(seconds(rows[fmt, dtype, "forward+backward"]) - seconds(row))
    flop = next(r["gflop"] for r in ceiling["rows"] if r["pass"] == "forward+backward")
    return max(flop / (min(forward) + max(min(backward), 0.0)), best_rate(ceiling))


def summarize(ceiling: dict, refiner_step_flops: float, plain_eager_refiner_images_per_s: float | None) -> dict:
    """Ceiling of the refiner step (images/s at :func:`best_split_rate`) and of the speedup."""
    out = {"best_forward_backward_gflop_per_s": best_rate(ceiling), "split_gflop_per_s": best_split_rate(ceiling)}
    out["refiner_images_per_s"] = out["split_gflop_per_s"] * 1e9 / refiner_step_flops
    if plain_eager_refiner_images_per_s:
        out["max_speedup_over_plain_eager"] = out["refiner_images_per_s"] / plain_eager_refiner_images_per_s
    return out
