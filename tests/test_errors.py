"""Bad input gets one clear error and a non-zero exit, not a traceback from deep inside.

Runs the real entry script as a user would (a subprocess), in a temporary log dir.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), "debug=default", f"paths.log_dir={tmp_path}/logs",
         f"paths.cache_dir={tmp_path}/cache", *overrides],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def assert_one_clear_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    text = result.stderr
    for word in words:
        assert word in text, text[-2000:]


def test_unknown_experiment_name(tmp_path):
    result = run_train(tmp_path, "experiment=no_such_experiment")
    assert_one_clear_error(result, "experiment/no_such_experiment", "Available options")


def test_unknown_regularizer_name(tmp_path):
    result = run_train(tmp_path, "regularizer=vgg19")
    assert_one_clear_error(result, "regularizer/vgg19", "identity")


def test_missing_vgg_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "weights" / "vgg16.pth"
    result = run_train(tmp_path, "regularizer=vgg", f"regularizer.weights_path={missing}")
    assert result.returncode == 2
    assert_one_clear_error(result, "error:", str(missing))


def test_data_directory_without_the_expected_files(tmp_path):
    empty = tmp_path / "empty_data"
    empty.mkdir()
    result = run_train(tmp_path, f"paths.data_dir={empty}")
    assert result.returncode == 2
    assert_one_clear_error(result, "error:", str(empty / "mpiigaze"), "not found")


@pytest.mark.parametrize("size", [(16, 16), (20, 60)])
def test_image_size_smaller_than_the_discriminator_patch(tmp_path, size):
    h, w = size
    result = run_train(tmp_path, f"data.height={h}", f"data.width={w}")
    assert result.returncode == 2
    assert_one_clear_error(result, "error:", f"{h}x{w}", "receptive field")
    assert not list((tmp_path / "cache").glob("*.partial"))


@pytest.mark.parametrize("native, device, precision, warns", [
    (False, "cpu", "bf16-mixed", True),   # AVX2 CPU: bf16 runs, many times slower
    (True, "cpu", "bf16-mixed", False),   # AVX512-BF16 / AMX
    (None, "cpu", "bf16-mixed", False),   # flags unreadable: say nothing rather than guess
    (False, "cpu", "32-true", False),
    (False, "cuda", "bf16-mixed", False),
])
def test_bf16_on_a_cpu_without_native_bf16_gets_a_warning(monkeypatch, caplog, native, device, precision, warns):
    import simgan.validate as validate

    monkeypatch.setattr(validate, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level("WARNING", logger="simgan"):
        message = validate.warn_if_precision_is_slow_here(device, precision)
    assert (message is not None) == warns
    if warns:
        assert "trainer.precision=bf16-mixed" in message and "32-true" in message
        assert message in caplog.text
