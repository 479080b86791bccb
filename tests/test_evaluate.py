"""src/evaluate.py end to end: a tiny training, then an evaluation of its checkpoint.

Budgets are tiny (a few dozen images, one or two epochs), so the numbers are checked
for range and presence, not quality; each metric's own constructed-case tests are in
tests/test_metrics.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from simgan.errors import ConfigError, DataError, SimganError
from simgan.evaluation.run import evaluate
from simgan.metrics.kid import kid, kid_many
from simgan.training import train
from simgan.utils.cli import finish_wandb

ROOT = Path(__file__).resolve().parents[1]
TINY = ["n_images=48", "c2st.max_epochs=2", "kid.n_images=12", "kid.size=32", "kid.subsets=10",
        "labels.fit_images=96", "labels.steps=10", "labels.width=4", "downstream.n_train=96",
        "downstream.epochs=1", "downstream.n_test=100", "show_progress=false", "grid_rows=4"]


def _train_tiny(compose_train, tmp_path: Path, *overrides: str) -> Path:
    """Trains a debug run into tmp_path and leaves a Hydra-like run dir (.hydra/config.yaml)."""
    cfg = compose_train("debug=default", "logger=none", *overrides)
    train(cfg)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    return tmp_path / "checkpoints" / "last.ckpt"


def _compose_eval(compose_train, out: Path, *overrides: str):
    cfg = compose_train(*TINY, *overrides, config_name="evaluate")
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def _check_common(out: Path, results: dict) -> dict:
    saved = json.loads((out / "metrics.json").read_text())
    s = saved["summary"]
    for key in ("c2st_synthetic_acc", "c2st_refined_acc", "c2st_synthetic_auc", "c2st_refined_auc"):
        assert 0.0 <= s[key] <= 1.0, key
    for key in ("kid_synthetic", "kid_refined"):
        assert math.isfinite(s[key]) and s[key] > -1.0, key  # unbiased: may dip below 0, never far
    # the same real images and budget for both pairs: the comparison is paired
    c2st = saved["realism"]["c2st"]
    assert c2st["synthetic"]["n_test"] == c2st["refined"]["n_test"] > 0
    assert saved["meta"]["n_synthetic"] == 48 and saved["meta"]["seconds"]["total"] > 0
    for name in ("report.md", "grid.png", "realism.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "C2ST accuracy" in report and "realism.png" in report
    assert s == pytest.approx(results["summary"])
    return saved


@pytest.mark.slow
def test_eyes_training_then_evaluation(compose_train, tmp_path):
    ckpt = _train_tiny(compose_train, tmp_path)  # the eyes default (experiment=quick)
    out = tmp_path / "eval"
    # no data= given: the run's own data config (.hydra/config.yaml) is used
    results = evaluate(_compose_eval(compose_train, out, f"ckpt_path={ckpt}"))
    saved = _check_common(out, results)
    s = saved["summary"]
    assert s["pupil_shift_px_mean"] >= 0.0 and 0.0 <= s["gaze_drift_deg_mean"] <= 180.0
    assert s["pupil_shift_px_at_55_mean"] == pytest.approx(s["pupil_shift_px_mean"] * 55 / 60)
    assert saved["downstream"] is None and "accuracy_refined" not in s
    assert (out / "label_shift.png").is_file()
    assert "pupil shift" in (out / "report.md").read_text()
    assert saved["meta"]["data_from"].endswith(".hydra/config.yaml")


@pytest.mark.slow
def test_digits_training_then_evaluation_with_wandb(compose_train, tmp_path):
    ckpt = _train_tiny(compose_train, tmp_path, "experiment=digits")
    out = tmp_path / "eval"
    cfg = _compose_eval(compose_train, out, f"ckpt_path={ckpt}", "data=digits", "data.synthetic.n=256",
                        "data.real.n=256", "logger=wandb")
    try:
        results = evaluate(cfg)
    finally:
        finish_wandb()  # what task_wrapper does for the entry script
    saved = _check_common(out, results)
    d = saved["downstream"]
    for name in ("synthetic", "refined", "real"):
        assert 0.0 <= d[f"accuracy_{name}"] <= 1.0
        assert d[f"n_train_{name}"] == 96  # (a), (b), (c) get the same number of images
    assert d["n_test"] == 100 and saved["labels"] is None
    assert (out / "downstream.png").is_file()
    assert list((out / "wandb").glob("offline-run-*")), "W&B offline run dir missing"


@pytest.mark.slow
def test_usps2mnist_training_then_evaluation(compose_train, tmp_path):
    """USPS (labeled source) -> MNIST: (c) and the test set come from the MNIST split, all three the same size."""
    ckpt = _train_tiny(compose_train, tmp_path, "experiment=usps2mnist")
    out = tmp_path / "eval"
    results = evaluate(_compose_eval(compose_train, out, f"ckpt_path={ckpt}"))
    saved = _check_common(out, results)
    d, s = saved["downstream"], saved["summary"]
    assert d["task"] == "classify" and d["model"] == "LeNet"
    for name in ("synthetic", "refined", "real"):
        assert 0.0 <= s[f"accuracy_{name}"] <= 1.0 and d[f"n_train_{name}"] == 96
    assert d["n_test"] == 100 and saved["meta"]["data"]["synthetic"]["_target_"] == "simgan.data.usps.UspsDigits"


@pytest.mark.slow
def test_eyes_with_labeled_gaze_stores_report_the_angle_error(compose_train, tmp_path):
    """Your own labeled real data (paper Sec. 3.2, Table 2): gaze regressors, error in degrees."""
    import numpy as np

    from simgan.data.simulators.eyes import render_eyes
    from simgan.data.store import write_store

    ckpt = _train_tiny(compose_train, tmp_path)
    # stand-ins for labeled real eyes (e.g. MPIIGaze with gaze): other seeds than the training data
    images, labels = render_eyes(144, 36, 60, seed=7)
    test = write_store(tmp_path / "gaze_test.h5", images[:64], {"gaze": labels["gaze"][:64]})
    reference = write_store(tmp_path / "gaze_ref.h5", images[64:], {"gaze": labels["gaze"][64:]})
    out = tmp_path / "eval"
    results = evaluate(_compose_eval(compose_train, out, f"ckpt_path={ckpt}", "labels.enabled=false",
                                     "downstream.label=gaze", f"downstream.test_store={test}",
                                     f"downstream.reference_store={reference}"))
    saved = _check_common(out, results)
    d, s = saved["downstream"], saved["summary"]
    assert d["task"] == "regress" and d["error_measure"] == "angle_deg" and d["error_unit"] == "deg"
    for name in ("synthetic", "refined", "real"):
        assert 0.0 <= d[f"error_{name}"] <= 180.0 and s[f"error_{name}"] == pytest.approx(d[f"error_{name}"])
        assert d[f"n_train_{name}"] == 80  # cut to the reference store's size: all three the same
        assert f"accuracy_{name}" not in s
    assert d["n_test"] == 64 and np.isfinite(s["error_refined"])
    assert "angle_deg error, deg" in (out / "report.md").read_text()
    assert (out / "downstream.png").is_file()


def test_reference_labels_come_from_the_npz_and_test_split_is_disjoint(compose_train, cache_dir):
    """(c)'s labels are the MNIST labels of the unlabeled stream's images; none are test images."""
    import h5py
    import numpy as np

    from simgan.data.mnist import MnistSplit as MnistStream

    npz = ROOT / "data" / "mnist" / "mnist_train_5k.npz"
    unlabeled = MnistStream(str(npz), str(cache_dir), split="unlabeled", n=256)
    unlabeled.prepare()
    test = MnistStream(str(npz), str(cache_dir), split="test")
    with h5py.File(unlabeled.path) as f, h5py.File(test.path) as g:
        assert not set(f.attrs["source_indices"]) & set(g.attrs["source_indices"])
        source = f.attrs["source_indices"]
    labels = unlabeled.labels_of(torch.arange(10))
    assert unlabeled.side("test").path == test.path
    with np.load(npz) as arrays:
        assert labels.tolist() == arrays["labels"][source[:10]].tolist()
    assert unlabeled.n == 256


def test_kid_many_equals_kid_per_pair():
    gen = torch.Generator().manual_seed(0)
    real, a, b = (torch.rand(12, 1, 28, 28, generator=gen) * 2 - 1 for _ in range(3))
    many = kid_many(real, {"a": a, "b": b}, subset_size=12, subsets=5, size=32, show_progress=False)
    for name, x in (("a", a), ("b", b)):
        one = kid(real, x, subset_size=12, subsets=5, size=32, show_progress=False)
        assert many[name]["kid_mean"] == pytest.approx(one["kid_mean"], rel=1e-5, abs=1e-7)


def test_missing_checkpoint_is_a_user_error(compose_train, tmp_path):
    with pytest.raises(DataError, match="checkpoint file not found"):
        evaluate(_compose_eval(compose_train, tmp_path, f"ckpt_path={tmp_path}/nope.ckpt", "data=digits"))
    with pytest.raises(ConfigError, match="ckpt_path is not set"):
        evaluate(_compose_eval(compose_train, tmp_path, "data=digits"))


def test_checkpoint_without_run_config_needs_data(compose_train, tmp_path):
    ckpt = _fake_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", channels=1)
    with pytest.raises(ConfigError, match="data=digits"):
        evaluate(_compose_eval(compose_train, tmp_path, f"ckpt_path={ckpt}"))


def test_channel_mismatch_is_refused_before_any_work(compose_train, tmp_path):
    ckpt = _fake_checkpoint(tmp_path / "rgb.ckpt", channels=3)
    with pytest.raises(SimganError, match="3 channel"):
        evaluate(_compose_eval(compose_train, tmp_path, f"ckpt_path={ckpt}", "data=digits"))
    assert not (tmp_path / "metrics.json").exists()


def test_entry_script_prints_one_line_and_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "src" / "evaluate.py"), f"ckpt_path={tmp_path}/none.ckpt",
                           "data=digits", f"hydra.run.dir={tmp_path}/run"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in proc.stderr


def _fake_checkpoint(path: Path, channels: int) -> Path:
    """A minimal SimGAN-shaped checkpoint: the refiner config + refiner.* weights."""
    from simgan.models.refiner import Refiner

    config = {"_target_": "simgan.models.refiner.Refiner", "channels": channels, "width": 4, "num_blocks": 1}
    refiner = Refiner(channels, 4, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": {"refiner": config, "image_shape": [channels, 28, 28]},
                "state_dict": {f"refiner.{k}": v for k, v in refiner.state_dict().items()}, "global_step": 0}, path)
    return path
