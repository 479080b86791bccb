"""Shared test set-up: one CPU thread per process, W&B offline, configs composed for real."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch is imported anywhere: two processes with 2 threads each on 2 cores run
# several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
ROOT = Path(__file__).resolve().parents[1]
os.environ["SIMGAN_ROOT"] = str(ROOT)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One store cache for the whole session: each rendered set is made once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def compose_train(tmp_path, cache_dir):
    """Composes conf/train.yaml as `python src/train.py <overrides>` would, writing into tmp_path."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    def _compose(*overrides: str, config_name: str = "train"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
            cfg = compose(config_name=config_name, return_hydra_config=True,
                          overrides=[f"paths.cache_dir={cache_dir}", *overrides])
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # a launched job's cfg has no hydra node either
            cfg.paths.output_dir = str(tmp_path)
            cfg.paths.log_dir = str(tmp_path / "logs")
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(autouse=True)
def no_wandb_run_left_behind():
    """Finishes a W&B run a test left open (as the entry scripts' task_wrapper does).

    A run left open is reused by the next WandbLogger, which then logs into the old
    test's directory.
    """
    yield
    from simgan.utils.cli import finish_wandb

    finish_wandb()


@pytest.fixture(autouse=True)
def restore_root_logging():
    """Undoes the logging set-up of an entry script run in-process (Hydra's job logging).

    Its handlers hold the test's captured stderr; once pytest closes that stream, every
    later log record prints '--- Logging error --- ... I/O operation on closed file'.
    """
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
