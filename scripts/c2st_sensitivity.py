"""What the C2ST judge can see: real eyes against themselves after small, label-free changes.

The evaluation's realism test (``simgan.metrics.c2st``) is a CNN trained to tell two sets
apart. This script asks how little it takes for that judge to separate held-out real
MPIIGaze eyes from *the same real eyes* changed slightly (a light blur, faint noise, a
brightness shift, coarser quantisation): if such changes already score near 1.0, a C2ST
near 0.5 for refined renders would need the refiner to reproduce the real crops' pixel
statistics to that precision, which bounds what any refiner can reach on this measure.
Each row: the first half of the 500 held-out real eyes (the ``data=eyes`` validation
split) vs the changed second half, so no image is on both sides.

    python scripts/c2st_sensitivity.py
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SIMGAN_ROOT", str(ROOT))


def held_out_real() -> torch.Tensor:
    from hydra import compose, initialize_config_dir

    from simgan.data.subsets import stack
    from simgan.evaluation.inputs import build_datamodule

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="train", overrides=["hydra.job.chdir=false"])
    datamodule = build_datamodule(cfg.data)
    images, _ = stack(datamodule.splits["real_val"], 0, len(datamodule.splits["real_val"]), "read real")
    return images


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, 5)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.transpose(2, 3))


def main() -> None:
    from simgan.metrics.c2st import c2st

    torch.manual_seed(0)
    real = held_out_real()
    half = len(real) // 2
    a, b = real[:half], real[half:]
    grey = 2.0 / 255  # one grey level in [-1, 1] units
    changes = {
        "unchanged (chance)": lambda x: x,
        "blur sigma 0.5 px": lambda x: blur(x, 0.5),
        "blur sigma 1.0 px": lambda x: blur(x, 1.0),
        "noise sd 2 grey levels": lambda x: (x + 2 * grey * torch.randn_like(x)).clamp(-1, 1),
        "noise sd 6 grey levels": lambda x: (x + 6 * grey * torch.randn_like(x)).clamp(-1, 1),
        "brightness +8 grey levels": lambda x: (x + 8 * grey).clamp(-1, 1),
        "quantised to 32 levels": lambda x: ((x + 1) * 15.5).round() / 15.5 - 1,
        # moves the crop's own 8x8 JPEG block grid off the image origin; content is unchanged
        "shifted 4 px right (edge continued)": lambda x: torch.cat([x[..., :1].expand(-1, -1, -1, 4), x[..., :-4]], -1),
        "mirrored left-right": lambda x: x.flip(-1),
    }
    print("| b = held-out real eyes, changed by | C2ST accuracy | AUC |\n| --- | --- | --- |")
    for name, change in changes.items():
        result = c2st(a, change(b), seed=0, show_progress=False)
        print(f"| {name} | {result['accuracy']:.3f} | {result['auc']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
