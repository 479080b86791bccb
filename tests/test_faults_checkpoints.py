"""Bad checkpoints: train, refine and evaluate refuse the same files, with one line each.

The checkpoint comes from a real 2-step run of ``src/train.py``. Truncated, empty, a bare
``torch.save`` of a dict, another architecture, NaN weights, a refiner trained on another
image size: each is one ``error:`` line naming the file, exit status 2, nothing written.
A resumed run also deletes the partial files that killed writers left in the run it resumes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from reliability_helpers import assert_one_error_line, dead_pid
from simgan.data.store import write_store
from simgan.errors import DataError
from simgan.export.predictor import RefinePredictor
from simgan.reliability import partials

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
SHORT = ["debug=default", "logger=csv", "model.refiner.width=8", "model.refiner.num_blocks=1",
         "model.discriminator.widths=[8,8,8,8]", "model.history_size=16", "data.batch_size=8", "data.synthetic.n=40",
         "data.real.n=24", "model.schedule.refiner_pretrain_steps=1", "model.schedule.discriminator_pretrain_steps=1",
         "model.schedule.adversarial_steps=0", "+trainer.enable_progress_bar=false"]


def run_train(root: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), *SHORT, f"paths.log_dir={root}/logs",
                           f"paths.cache_dir={root}/cache", *overrides],
                          capture_output=True, text=True, env=ENV, timeout=300, cwd=root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    result = run_train(root)
    assert result.returncode == 0, result.stderr[-3000:]
    (ckpt,) = (root / "logs").glob("debug/runs/*/checkpoints/last.ckpt")
    return ckpt


def _truncated(tmp: Path, ckpt: Path) -> Path:
    (tmp / "cut.ckpt").write_bytes(ckpt.read_bytes()[:2000])
    return tmp / "cut.ckpt"


def _empty(tmp: Path, ckpt: Path) -> Path:
    (tmp / "empty.ckpt").write_bytes(b"")
    return tmp / "empty.ckpt"


def _plain_dict(tmp: Path, ckpt: Path) -> Path:
    torch.save({"weights": torch.zeros(3), "step": 1}, tmp / "dict.ckpt")
    return tmp / "dict.ckpt"


def _nan_weight(tmp: Path, ckpt: Path) -> Path:
    checkpoint = torch.load(ckpt, weights_only=False)
    # R and, when the run keeps one, R's weight average (what refine and evaluate load)
    for prefix in ("refiner.", "refiner_ema.average."):
        names = [k for k in checkpoint["state_dict"] if k.startswith(prefix) and k.endswith("weight")]
        if names:
            checkpoint["state_dict"][names[0]].view(-1)[0] = float("nan")
    torch.save(checkpoint, tmp / "nan.ckpt")
    return tmp / "nan.ckpt"


def _own_architecture_mismatch(tmp: Path, ckpt: Path) -> Path:
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint["hyper_parameters"]["refiner"]["num_blocks"] = 3  # the weights are for 1 block
    torch.save(checkpoint, tmp / "arch.ckpt")
    return tmp / "arch.ckpt"


BAD = {  # name: (make the file, what the one line says)
    "truncated": (_truncated, "cannot read checkpoint"),
    "empty": (_empty, "checkpoint file is empty"),
    "torch.save of a dict": (_plain_dict, "not a SimGAN checkpoint"),
    "NaN refiner weight": (_nan_weight, "holds NaN/inf"),
}


@pytest.mark.parametrize("case", [*BAD, "another architecture than the config"])
def test_train_refuses_a_bad_checkpoint_in_one_line(case, trained, tmp_path):
    if case in BAD:
        make, words = BAD[case]
        bad, extra = make(tmp_path, trained), []
    else:  # the run's own checkpoint, but the config asks for a wider refiner
        bad, words, extra = trained, "its weights do not fit the configured model", ["model.refiner.width=16"]
    result = run_train(tmp_path, f"ckpt_path={bad}", *extra)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(bad), words)
    assert not list((tmp_path / "logs").glob("**/*.ckpt"))  # nothing trained, nothing saved


@pytest.fixture
def compose_refine(compose_train):
    return lambda *overrides: compose_train("trainer=cpu", "num_workers=0", "batch_size=32", "contact_sheet=0",
                                            *overrides, config_name="refine")


@pytest.mark.parametrize("case", [*BAD, "weights of another architecture"])
def test_refine_and_evaluate_refuse_the_same_files(case, trained, tmp_path, compose_refine, compose_train):
    from simgan.evaluation.run import evaluate
    from simgan.export.refine import refine

    make, words = BAD.get(case, (_own_architecture_mismatch, "refiner weights do not fit the architecture"))
    bad = make(tmp_path, trained)
    store = write_store(tmp_path / "in.h5", np.zeros((8, 1, 36, 60), np.uint8))
    with pytest.raises(DataError, match=str(bad)) as refused:
        refine(compose_refine(f"ckpt_path={bad}", f"input={store}", f"output={tmp_path / 'out.h5'}"))
    assert words in str(refused.value)
    cfg = compose_train(f"ckpt_path={bad}", "data=eyes", "show_progress=false", config_name="evaluate")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "eval")
    with pytest.raises(DataError, match=str(bad)) as refused:
        evaluate(cfg)
    assert words in str(refused.value)
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "eval" / "metrics.json").exists()


def test_refine_entry_script_refuses_nan_weights_instead_of_writing_zeros(trained, tmp_path):
    bad = _nan_weight(tmp_path, trained)
    store = write_store(tmp_path / "in.h5", np.zeros((8, 1, 36, 60), np.uint8))
    out = tmp_path / "out.h5"
    result = subprocess.run([sys.executable, str(ROOT / "src" / "refine.py"), f"ckpt_path={bad}", f"input={store}",
                             f"output={out}", f"paths.log_dir={tmp_path}/logs", "trainer=cpu", "num_workers=0"],
                            capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, str(bad), "holds NaN/inf")
    assert not out.exists() and not list(tmp_path.glob("out.h5*"))


def test_a_refiner_that_outputs_nan_is_refused_not_clamped():
    class Diverged(torch.nn.Module):
        def forward(self, x):
            return x * float("nan")

    predictor = RefinePredictor(Diverged(), (0, 255), np.uint8, input_path="in.h5", checkpoint_path="bad.ckpt")
    batch = {"image": torch.zeros(4, 1, 8, 8, dtype=torch.uint8), "chunk": 0, "start": 0, "stop": 4}
    with pytest.raises(DataError, match=r"samples 0\.\.3 of in\.h5: the refiner of bad\.ckpt outputs NaN/inf"):
        predictor.predict_step(batch, 0)


def test_inf_pixels_in_a_float_input_store_are_refused_by_refine():
    predictor = RefinePredictor(torch.nn.Identity(), (-1, 1), np.float32, input_path="in.h5")
    image = torch.zeros(4, 1, 8, 8)
    image[2, 0, 1, 1] = float("inf")  # clamping it would refine a made-up pixel
    with pytest.raises(DataError, match=r"samples 8\.\.11 of in\.h5: NaN or inf pixels in the input store"):
        predictor.predict_step({"image": image, "chunk": 0, "start": 8, "stop": 12}, 0)


def test_evaluate_refuses_a_refiner_of_another_image_size_as_refine_does(trained, tmp_path, compose_refine,
                                                                          compose_train):
    from simgan.evaluation.run import evaluate
    from simgan.export.refine import refine

    checkpoint = torch.load(trained, weights_only=False)
    checkpoint["hyper_parameters"]["image_shape"] = [1, 64, 64]  # a hand refiner (64x64 depth)
    torch.save(checkpoint, tmp_path / "hand.ckpt")
    cfg = compose_train(f"ckpt_path={tmp_path / 'hand.ckpt'}", "data=eyes", "show_progress=false",
                        config_name="evaluate")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "eval")
    with pytest.raises(DataError, match=r"images are 36x60, the refiner in .*hand\.ckpt was trained on 64x64"):
        evaluate(cfg)
    assert not (tmp_path / "eval" / "report.md").exists()
    store = write_store(tmp_path / "eyes.h5", np.zeros((8, 1, 36, 60), np.uint8))
    with pytest.raises(DataError, match=r"images are 36x60, the refiner in .*hand\.ckpt was trained on 64x64"):
        refine(compose_refine(f"ckpt_path={tmp_path / 'hand.ckpt'}", f"input={store}",
                              f"output={tmp_path / 'out.h5'}"))


def test_resume_deletes_killed_writers_partials_in_the_run_it_resumes(trained, tmp_path):
    run = tmp_path / "old_run" / "checkpoints"
    shutil.copytree(trained.parent, run)
    orphan = partials.partial_path(run / "last.ckpt", dead_pid())  # a writer SIGKILLed mid-write
    orphan.write_bytes(b"PK half a checkpoint")
    step_orphan = partials.partial_path(run / "step000001.ckpt", dead_pid())
    step_orphan.write_bytes(b"PK")
    alive = partials.partial_path(run / "last.ckpt", os.getpid())  # a live writer's: kept
    alive.write_bytes(b"in progress")
    result = run_train(tmp_path, f"ckpt_path={run / 'last.ckpt'}", "model.schedule.adversarial_steps=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Finished 3 steps" in result.stdout
    assert not orphan.exists() and not step_orphan.exists() and alive.exists()
