"""The training console says what is happening, and nothing every run printed on purpose.

A debug run of the entry script, its output not a terminal (as in a log file), must
show the schedule's steps out of the total, each phase by name and R's and D's scores,
in its output and in ``train.log``, and none of: Lightning's ``Epoch 0/-2``, the
``_pytree`` LeafSpec deprecation, the eval-mode warning for the frozen regularizer and
EMA copy, the summary's FLOPs. On a (pseudo) terminal the rich bar shows the same.
An unexpected module in eval mode must still warn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from torch import nn

from simgan.callbacks.progress import silence_intended_eval_mode_warning

ROOT = Path(__file__).resolve().parents[1]
GONE = ("Epoch 0/", "LeafSpec", "module(s) in eval mode", "FLOPs", "Total Flops", "Trainer already configured")


def _train(tmp_path: Path, *overrides: str, tty: bool = False) -> str:
    command = [sys.executable, str(ROOT / "src" / "train.py"), "debug=default", f"hydra.run.dir={tmp_path}",
               "trainer.log_every_n_steps=2", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    if tty:  # script(1) runs the command on a pseudo terminal
        command = ["script", "-qec", " ".join(command), "/dev/null"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_log_shows_steps_phases_and_scores_and_no_intended_warnings(tmp_path):
    out = _train(tmp_path)
    log = (tmp_path / "debug.log").read_text()
    for text in (out, log):
        assert "step 2/10 (20%)  refiner pretraining  |  R loss " in text
        assert "step 4/10 (40%)  discriminator pretraining  |  R loss " in text
        assert "step 10/10 (100%)  adversarial" in text
        for score in ("D loss", "D acc real", "D acc refined"):
            assert score in text.split("step 10/10")[1].splitlines()[0]
    for text in GONE:
        assert text not in out, text
    assert "Trainable params" in out  # the summary itself is kept


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pseudo terminal")
def test_terminal_gets_a_rich_bar_over_the_whole_schedule(tmp_path):
    out = _train(tmp_path, tty=True)
    assert "adversarial" in out and "10/10" in out and "R loss" in out and "D acc refined" in out
    assert "step 10/10" not in out  # the bar, not the log lines
    for text in GONE:
        assert text not in out, text


def _module_with(eval_names: tuple[str, ...]) -> nn.Module:
    module = nn.Module()
    for name in ("refiner", "regularizer", "refiner_ema", "other"):
        setattr(module, name, nn.Sequential(nn.Linear(1, 1)))
    for name in eval_names:
        getattr(module, name).eval()
    return module


def test_only_the_intended_eval_modules_are_silenced():
    with warnings.catch_warnings():
        before = len(warnings.filters)
        silence_intended_eval_mode_warning(_module_with(("regularizer", "refiner_ema")))
        assert len(warnings.filters) == before + 1
    with warnings.catch_warnings():
        before = len(warnings.filters)
        silence_intended_eval_mode_warning(_module_with(("regularizer", "other")))
        assert len(warnings.filters) == before
