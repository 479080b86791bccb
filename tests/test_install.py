"""The console commands after ``pip install``: configs and embedded data ship in the package.

The slow test builds a wheel from a copy of this checkout (so nothing is written into
it), installs it into a fresh venv that reuses this interpreter's packages
(``--system-site-packages``: no downloads), then, from a folder outside any clone and
without SIMGAN_ROOT, trains with ``simgan-train debug=default`` (logs in ``./logs/``, the
render cache in ``./data/cache/``, the real eyes read from the package) and refines the
rendered store with ``simgan-refine`` and that run's checkpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simgan.cli_entry import CONFIG_DIR, DATA_DIR, installed_path_overrides

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("simgan-train", "simgan-refine", "simgan-evaluate", "simgan-convert", "simgan-bench")


def test_the_clone_and_the_package_read_the_same_configs_and_data():
    assert CONFIG_DIR.resolve() == (ROOT / "conf").resolve()  # src/simgan/conf links to conf/
    assert DATA_DIR.resolve() == (ROOT / "data").resolve()
    assert (DATA_DIR / "mpiigaze" / "mpiigaze_real_eyes_36x60.npz").is_file()


def test_installed_commands_add_the_package_data_unless_paths_are_given():
    assert installed_path_overrides(["debug=default"]) == [
        f"paths.data_dir={DATA_DIR}", "paths.cache_dir=${paths.root_dir}/data/cache"]
    assert installed_path_overrides(["paths.cache_dir=/c"]) == [f"paths.data_dir={DATA_DIR}"]
    assert installed_path_overrides(["paths.data_dir=/d"]) == []


def _copy_checkout(dst: Path) -> Path:
    dst.mkdir()
    ignore = shutil.ignore_patterns("cache", "__pycache__", "*.egg-info", "*.h5", "build", "logs")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    for name in ("src", "conf", "data"):
        shutil.copytree(ROOT / name, dst / name, symlinks=True, ignore=ignore)
    return dst


def _run(command: list[str], cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_installs_commands_that_train_and_refine_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SIMGAN_ROOT", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    source = _copy_checkout(tmp_path / "source")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
          str(source)], tmp_path, env)
    wheel = next((tmp_path / "dist").glob("simgan-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, env)
    bin_dir = venv / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", str(wheel)], tmp_path, env)
    where = _run([str(bin_dir / "python"), "-c", "import simgan; print(simgan.__file__)"], tmp_path, env)
    assert where.stdout.strip().startswith(str(venv))  # the wheel, not this checkout
    for command in COMMANDS:
        assert (bin_dir / command).is_file(), command

    work = tmp_path / "elsewhere"
    work.mkdir()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    trained = _run(["simgan-train", "debug=default"], work, env)
    assert "step 10/10" in trained.stdout + trained.stderr
    ckpt = next((work / "logs" / "debug" / "runs").glob("*/checkpoints/last.ckpt"))
    store = next((work / "data" / "cache").glob("eyes_*.h5"))  # rendered into ./data/cache
    _run(["simgan-refine", f"ckpt_path={ckpt}", f"input={store}", f"output={work / 'refined.h5'}",
          "contact_sheet=0"], work, env)
    assert (work / "refined.h5").is_file() and any((work / "logs" / "refine" / "runs").iterdir())
    for command in ("simgan-convert", "simgan-bench"):
        _run([command, "--help"], work, env, timeout=120)
