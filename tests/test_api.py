"""The public Python API: ``simgan.load_refiner``, ``simgan.refine``, ``simgan.RefinedDataset``.

``refine`` must give back what it got (type, shape, dtype, range) and equal R applied
to the [-1, 1] images, batched or not; the dataset wrapper must refine only the image
and pass labels through; the README's example must run as written; ``import simgan``
must not import torch.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import simgan
from simgan.models.refiner import Refiner

ROOT = Path(__file__).resolve().parents[1]
SHAPE = [1, 20, 28]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A SimGAN-shaped checkpoint of a small refiner with noise input."""
    torch.manual_seed(0)
    config = {"_target_": "simgan.models.refiner.Refiner", "channels": 1, "width": 4, "num_blocks": 1,
              "padding": "reflect", "noise_channels": 2}
    refiner = Refiner(1, 4, 1, padding="reflect", noise_channels=2)
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    torch.save({"hyper_parameters": {"refiner": config, "image_shape": SHAPE},
                "state_dict": {f"refiner.{k}": v for k, v in refiner.state_dict().items()}, "global_step": 3}, path)
    return path


@pytest.fixture(scope="module")
def refiner(ckpt):
    return simgan.load_refiner(ckpt)[0]


def _uint8(n: int = 7) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, *SHAPE[1:]), dtype=np.uint8)


def test_float_tensors_in_are_refined_float_tensors_out(refiner):
    x = torch.rand(7, *SHAPE) * 2 - 1
    out = simgan.refine(refiner, x, batch_size=3)  # three batches, the last one short
    assert isinstance(out, torch.Tensor) and out.dtype == x.dtype and out.shape == x.shape
    assert not out.requires_grad
    torch.testing.assert_close(out, refiner(x), rtol=0, atol=1e-6)
    x64 = x.double().numpy()
    out64 = simgan.refine(refiner, x64)
    assert isinstance(out64, np.ndarray) and out64.dtype == np.float64
    np.testing.assert_allclose(out64, out.double().numpy(), atol=1e-6)


def test_uint8_pixels_in_are_uint8_pixels_out_as_a_refined_store_holds(refiner):
    from simgan.export.predictor import RefinePredictor

    images = _uint8()
    out = simgan.refine(refiner, images)  # (N, H, W)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == images.shape
    expected = RefinePredictor(refiner, (0, 255), np.uint8)(torch.from_numpy(images)[:, None])[:, 0]
    np.testing.assert_array_equal(out, expected.numpy())
    np.testing.assert_array_equal(simgan.refine(refiner, torch.from_numpy(images)[:, None]).numpy()[:, 0], out)


def test_refine_keeps_the_refiner_mode_and_refuses_what_it_cannot_take(refiner, ckpt):
    refiner.train()
    simgan.refine(refiner, _uint8(2))
    assert refiner.training
    refiner.eval()
    with pytest.raises(TypeError, match="uint8"):
        simgan.refine(refiner, _uint8(2).astype(np.int32))
    with pytest.raises(ValueError, match="1-channel"):
        simgan.refine(refiner, np.zeros((2, 3, 20, 28), np.float32))
    with pytest.raises(ValueError, match="batch"):
        simgan.refine(refiner, np.zeros((20, 28), np.float32))
    np.testing.assert_array_equal(simgan.refine(ckpt, _uint8(2)), simgan.refine(refiner, _uint8(2)))  # a path works


def test_refined_dataset_refines_images_and_passes_labels_through(refiner):
    images = torch.rand(4, *SHAPE) * 2 - 1
    labels = torch.arange(4.0)
    as_dicts = [{"image": images[i], "gaze": labels[i]} for i in range(4)]
    as_tuples = list(zip(images, labels))
    expected = refiner(images)
    dicts = simgan.RefinedDataset(as_dicts, refiner, image_key="image")
    tuples = simgan.RefinedDataset(as_tuples, refiner)
    bare = simgan.RefinedDataset(list(images), refiner)
    assert len(dicts) == len(tuples) == len(bare) == 4
    for i in range(4):
        torch.testing.assert_close(dicts[i]["image"], expected[i], rtol=0, atol=1e-6)
        assert dicts[i]["gaze"] == labels[i]
        torch.testing.assert_close(tuples[i][0], expected[i], rtol=0, atol=1e-6)
        assert isinstance(tuples[i], tuple) and tuples[i][1] == labels[i]
        torch.testing.assert_close(bare[i], expected[i], rtol=0, atol=1e-6)
    batch = next(iter(torch.utils.data.DataLoader(dicts, batch_size=4)))
    torch.testing.assert_close(batch["image"], expected, rtol=0, atol=1e-6)


def test_readme_example_runs(ckpt):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use a refiner from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    placeholder = "logs/train/runs/<run>/checkpoints/last.ckpt"
    assert placeholder in code
    namespace: dict = {}
    exec(compile(code.replace(placeholder, str(ckpt)), "README.md", "exec"), namespace)
    assert namespace["images"].shape == (4, *SHAPE[1:]) and namespace["images"].dtype == torch.uint8


def test_import_simgan_is_light():
    proc = subprocess.run([sys.executable, "-c", "import sys, simgan; print(sorted(m for m in ('torch', 'lightning', "
                           "'hydra') if m in sys.modules)); print(simgan.__version__)"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "[]"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_refine_takes_an_exported_torchscript_refiner(refiner, ckpt, tmp_path):
    from simgan.export.portable import export

    export(ckpt, tmp_path / "r.pt")
    scripted = torch.jit.load(str(tmp_path / "r.pt"))
    images = _uint8(3)
    np.testing.assert_array_equal(simgan.refine(scripted, images), simgan.refine(refiner, images))
