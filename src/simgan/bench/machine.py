"""What the numbers were measured on: CPU, threads, torch build, bf16 support, load."""

from __future__ import annotations

import os

import torch

from simgan.utils.cpu import cpu_has_native_bf16, cpu_model


def describe(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_native": bool(cpu_has_native_bf16()),
        "mkldnn_bf16_supported": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
