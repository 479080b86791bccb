"""What one benchmark run measures: sizes, repeats, and the fast-path variants.

A *variant* is a set of fast paths switched on together, named by joining them with
``+`` (``compile+channels_last+fused``); ``eager`` is none of them. Each fast path has
the same meaning in the plain loop and in the platform:

==============  ====================================  ==========================================
fast path       plain PyTorch loop                    platform (config)
==============  ====================================  ==========================================
channels_last   nets and batches in NHWC              ``model.channels_last=true``
compile         ``torch.compile`` of R and D          ``model.compile=true``
bf16            ``torch.autocast(bfloat16)`` around   ``trainer.precision=bf16-mixed``
                forward + losses
fused           ``Adam(fused=True)``                  ``model.*_optimizer.fused=true``
==============  ====================================  ==========================================
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field

from simgan.models.refiner import Refiner

FAST_PATHS = ("compile", "channels_last", "bf16", "fused")
PARTS = ("train", "overhead", "pipeline", "refine", "scale")
DEFAULT_VARIANTS = ("eager", "channels_last", "compile", "bf16", "fused", "compile+channels_last+fused")
_REFINER = inspect.signature(Refiner).parameters


@dataclass(frozen=True)
class Variant:
    compile: bool = False
    channels_last: bool = False
    bf16: bool = False
    fused: bool = False

    @classmethod
    def parse(cls, name: str) -> "Variant":
        parts = [p for p in name.strip().split("+") if p and p != "eager"]
        unknown = [p for p in parts if p not in FAST_PATHS]
        if unknown:
            raise ValueError(f"unknown fast path(s) {unknown} in variant '{name}'; known: eager, {', '.join(FAST_PATHS)}")
        return cls(**{p: True for p in parts})

    @property
    def name(self) -> str:
        on = [p for p in FAST_PATHS if getattr(self, p)]
        return "+".join(on) if on else "eager"


@dataclass
class BenchSettings:
    batch: int = 64
    height: int = 35
    width_px: int = 55
    channels: int = 1
    width: int = _REFINER["width"].default  # refiner feature maps (the model's default: paper gaze)
    blocks: int = _REFINER["num_blocks"].default  # refiner ResNet blocks (likewise)
    repeats: int = 3
    steps: int = 4  # timed steps per network per window
    warmup: int = 1  # untimed K_g:K_d cycles at the start of every window
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    optimizer: str = "adam"
    lr: float = 1e-4
    history_size: int = 6400
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    pipeline_images: int = 4096  # per stream, in the HDF5 stores of the pipeline benchmark
    pipeline_workers: int = 2
    pipeline_batches: int = 60
    refine_batches: int = 40  # the refine export's store, in batches
    refine_repeats: int = 3  # alternating bare forward / export runs
    refine_memory_scales: tuple[int, ...] = (1, 2)  # peak memory of stores this many times that, fresh processes
    scale_quick: bool = False  # the scale part's small stores (60,000 eyes, 2,000 crops) instead of paper scale
    scale_sizes: dict = field(default_factory=dict)  # or any of its sizes set (simgan.bench.scale.FULL's keys)
    parts: tuple[str, ...] = PARTS
    out: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width_px)

    def parsed_variants(self) -> list[Variant]:
        seen, out = set(), []
        for name in self.variants:
            v = Variant.parse(name)
            if v not in seen:
                seen.add(v)
                out.append(v)
        if Variant() not in seen:  # every ratio is quoted against eager: always measure it
            out.insert(0, Variant())
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def quick(**overrides) -> BenchSettings:
    """The small setting (``--quick``): a slim refiner at the paper's 35x55, minutes on 2 CPU cores."""
    base = dict(batch=16, width=32, blocks=2, repeats=3, steps=3, warmup=1, pipeline_images=2048,
                pipeline_batches=40, refine_batches=100, refine_repeats=7, refine_memory_scales=(1, 4),
                scale_quick=True)
    base.update(overrides)
    return BenchSettings(**base)


def parse_size(text: str) -> tuple[int, int]:
    """``35x55`` -> (35, 55): height x width, as the paper writes eye sizes."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 35x55 (height x width), got '{text}'") from None
    return h, w
