"""What the CPU can do fast: its model name and whether it has native bf16 arithmetic.

bf16 runs fast on a CPU only with native bf16 dot products (AVX512-BF16 or AMX); without
them oneDNN converts and computes in fp32, slower than fp32 itself (docs/benchmark.md:
the refiner's main convolution ran ~14x slower in bf16 than in fp32 on an AVX2 CPU).
"""

from __future__ import annotations

import platform

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    return set((_cpuinfo_field("flags") or "").split())


def cpu_has_native_bf16() -> bool | None:
    """True/False from the CPU's flags; None where they cannot be read (not Linux)."""
    flags = cpu_flags()
    return bool(flags & NATIVE_BF16_FLAGS) if flags else None
