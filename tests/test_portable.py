"""The portable refiner: TorchScript and ONNX files that run without simgan.

Each exported file is loaded in a fresh Python process that imports only torch (or
onnxruntime) and must give the checkpoint refiner's output within 1e-5, for a plain
refiner, one with noise input (int64 hash) and one whose run kept an EMA of R's weights
(the average is what is exported). Bad input: one ``error:`` line, exit 2, no file.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simgan.checkpoint import load_refiner, sha256sum
from simgan.export.portable import export, read_metadata
from simgan.models.refiner import Refiner

SHAPE = [1, 20, 28]
HAS_ONNX = importlib.util.find_spec("onnx") is not None and importlib.util.find_spec("onnxruntime") is not None
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx / onnxruntime not installed (pip install 'simgan[onnx]')")


def make_checkpoint(path: Path, noise_channels: int = 0, ema: bool = False) -> Path:
    """A SimGAN-shaped checkpoint (refiner config + weights) with random, non-trivial weights."""
    torch.manual_seed(noise_channels + 10 * ema)
    config = {"_target_": "simgan.models.refiner.Refiner", "channels": SHAPE[0], "width": 4, "num_blocks": 1,
              "padding": "reflect", "noise_channels": noise_channels}
    refiner, average = (Refiner(**{k: v for k, v in config.items() if k != "_target_"}) for _ in range(2))
    state = {f"refiner.{k}": v for k, v in refiner.state_dict().items()}
    if ema:
        state.update({f"refiner_ema.average.{k}": v for k, v in average.state_dict().items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": {"refiner": config, "image_shape": SHAPE}, "state_dict": state,
                "global_step": 7}, path)
    return path


def _images(n: int = 5) -> torch.Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(1)) * 2 - 1


_TORCHSCRIPT_CONSUMER = """
import json, sys, torch
extra = {"simgan.json": ""}
model = torch.jit.load(sys.argv[1], _extra_files=extra)
x = torch.load(sys.argv[2])
torch.save(model(x), sys.argv[3])
assert "simgan" not in sys.modules, "the consumer imported simgan"
print(json.dumps(json.loads(extra["simgan.json"])))  # bytes or str
"""

_ONNX_CONSUMER = """
import json, sys
import numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
np.save(sys.argv[3], session.run(None, {"image": np.load(sys.argv[2])})[0])
assert "simgan" not in sys.modules and "torch" not in sys.modules, "the consumer imported simgan or torch"
print(json.dumps({k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}))
"""


def _consume(script: str, model: Path, x: torch.Tensor, tmp_path: Path, onnx: bool) -> tuple[torch.Tensor, dict]:
    import numpy as np

    src, dst = tmp_path / ("x.npy" if onnx else "x.pt"), tmp_path / ("y.npy" if onnx else "y.pt")
    np.save(src, x.numpy()) if onnx else torch.save(x, src)
    # -I: no PYTHONPATH, no user site, no cwd on sys.path; cwd outside the checkout
    proc = subprocess.run([sys.executable, "-I", "-c", script, str(model), str(src), str(dst)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    y = torch.from_numpy(np.load(dst)) if onnx else torch.load(dst)
    return y, json.loads(proc.stdout.strip().splitlines()[-1])


def _check_metadata(meta: dict, ckpt: Path, noise_channels: int) -> None:
    assert meta["input_shape"] == SHAPE and meta["channels"] == SHAPE[0]
    assert meta["pixel_range_in"] == [-1.0, 1.0] and meta["pixel_range_out"] == [-1.0, 1.0]
    assert meta["noise_channels"] == noise_channels
    assert meta["source_checkpoint_sha256"] == sha256sum(ckpt) and meta["global_step"] == 7


@pytest.mark.parametrize("noise_channels,ema", [(0, False), (2, False), (2, True)])
def test_torchscript_runs_without_simgan_and_matches(tmp_path, noise_channels, ema):
    ckpt = make_checkpoint(tmp_path / "run" / "last.ckpt", noise_channels, ema)
    out = tmp_path / "refiner.pt"
    export(ckpt, out)
    expected = load_refiner(ckpt)[0](_images())
    for x, want in ((_images(), expected), (_images(1), expected[:1])):  # another batch size than traced
        y, meta = _consume(_TORCHSCRIPT_CONSUMER, out, x, tmp_path, onnx=False)
        assert (y - want).abs().max() <= 1e-5
    _check_metadata(meta, ckpt, noise_channels)
    assert read_metadata(out) == meta
    if ema:  # the exported refiner is the average, not R's last weights
        raw = Refiner(1, 4, 1, padding="reflect", noise_channels=2)
        raw.load_state_dict({k[len("refiner."):]: v for k, v in torch.load(ckpt)["state_dict"].items()
                             if k.startswith("refiner.")})
        assert (raw(_images()) - y).abs().max() > 1e-3


@needs_onnx
@pytest.mark.parametrize("noise_channels,ema", [(0, False), (2, True)])
def test_onnx_runs_in_onnxruntime_and_matches(tmp_path, noise_channels, ema):
    ckpt = make_checkpoint(tmp_path / "run" / "last.ckpt", noise_channels, ema)
    out = tmp_path / "refiner.onnx"
    export(ckpt, out)
    y, meta = _consume(_ONNX_CONSUMER, out, _images(), tmp_path, onnx=True)
    assert (y - load_refiner(ckpt)[0](_images())).abs().max() <= 1e-5
    _check_metadata(meta, ckpt, noise_channels)
    assert read_metadata(out) == meta


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simgan.export.portable", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_command_line_writes_and_refuses_bad_input(tmp_path):
    ckpt = make_checkpoint(tmp_path / "last.ckpt", 2)
    ok = _cli(str(ckpt), "r.pt", cwd=tmp_path)
    assert ok.returncode == 0 and "wrote r.pt" in ok.stdout, ok.stderr
    (tmp_path / "cut.ckpt").write_bytes(ckpt.read_bytes()[:300])
    cases = {
        "missing": ("nope.ckpt", "a.pt"),
        "corrupt": ("cut.ckpt", "b.pt"),
        "suffix": (str(ckpt), "c.txt"),
        "exists": (str(ckpt), "r.pt"),
    }
    before = {p.name for p in tmp_path.iterdir()}
    for name, args in cases.items():
        proc = _cli(*args, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, proc.stderr)
    assert {p.name for p in tmp_path.iterdir()} == before  # nothing half-written, r.pt untouched
    again = _cli(str(ckpt), "r.pt", "--overwrite", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
