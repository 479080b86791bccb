"""Hydra sweeps for real: `src/train.py -m` with the basic launcher, the Optuna sweeper and submitit.

The sweep tests run the entry script in a subprocess on a 6-step tiny config, writing
under ``tmp_path`` (``paths.log_dir``). Checked: one run dir per job with its checkpoint, one
W&B run per job, all in ONE W&B group named after the sweep dir; Optuna's
``optimization_results.yaml``; a submitit_local job that finished; a DDP job inside a
sweep refused before it starts workers; the SLURM launcher config composing into the
sbatch flags DDP needs (no cluster here: submitit only writes the script text).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import yaml

from scaling_helpers import ROOT, run_train, wandb_run_group

# 6 steps (R R D D, then R D), validation and a checkpoint at steps 3 and 6.
SWEEP_TINY = [
    "debug=default", "logger=csv",
    "model.refiner.width=8", "model.refiner.num_blocks=1", "model.discriminator.widths=[8,8,8,8]",
    "model.history_size=16", "data.batch_size=8", "data.synthetic.n=40", "data.real.n=24",
    "model.schedule.refiner_pretrain_steps=2", "model.schedule.discriminator_pretrain_steps=2",
    "model.schedule.adversarial_steps=2", "trainer.val_check_interval=3", "trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
]


def _sweep(tmp_path: Path, cache_dir: Path, *overrides: str) -> Path:
    """Runs ``src/train.py -m``; returns the sweep dir, logs/debug/multiruns/<date>_<time>."""
    proc = run_train(tmp_path, "-m", *SWEEP_TINY, f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={cache_dir}",
                     *overrides)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert [p.name for p in (tmp_path / "logs" / "debug").iterdir()] == ["multiruns"]  # no stray runs/
    (sweep,) = (tmp_path / "logs" / "debug" / "multiruns").iterdir()
    return sweep


def _jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


@pytest.mark.slow
def test_basic_sweep_runs_each_job_in_its_own_dir_and_wandb_run_in_one_group(tmp_path, cache_dir):
    sweep = _sweep(tmp_path, cache_dir, "logger=default", "model.lambda_reg=0.1,1.0")
    jobs = _jobs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]
    groups, run_ids = set(), set()
    for job, value in zip(jobs, ("0.1", "1.0")):
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert f"model.lambda_reg={value}" in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        (offline_run,) = (job / "wandb").glob("offline-run-*")  # one W&B run per job: wandb.finish() between
        groups.add(wandb_run_group(offline_run))
        run_ids.add(offline_run.name.rsplit("-", 1)[1])
    assert groups == {f"debug_{sweep.name}"}  # the sweep's identity, shared by its jobs
    assert len(run_ids) == 2


@pytest.mark.slow
def test_optuna_sweep_writes_best_params(tmp_path, cache_dir):
    sweep = _sweep(tmp_path, cache_dir, "hparams_search=optuna", "hydra.sweeper.n_trials=2")
    assert len(_jobs(sweep)) == 2 and all((j / "checkpoints" / "last.ckpt").is_file() for j in _jobs(sweep))
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert set(results["best_params"]) == {"model.lambda_reg", "model.schedule.k_g", "model.refiner_optimizer.lr",
                                           "model.discriminator_optimizer.lr"}
    assert 0.0 <= float(results["best_value"]) <= 1.0  # optimized_metric: val/d_acc_refined


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job_to_its_checkpoint(tmp_path, cache_dir):
    sweep = _sweep(tmp_path, cache_dir, "hydra/launcher=local", "logger=default", "model.lambda_reg=0.5")
    (job,) = _jobs(sweep)
    assert (job / "checkpoints" / "last.ckpt").is_file()
    (result,) = sweep.glob(".submitit/*/*_0_result.pkl")
    with open(result, "rb") as f:
        outcome, job_return = pickle.load(f)
    assert outcome == "success" and job_return.status.name == "COMPLETED"
    assert isinstance(job_return.return_value, float)  # what train() returned: optimized_metric
    (offline_run,) = (job / "wandb").glob("offline-run-*")
    assert wandb_run_group(offline_run) == f"debug_{sweep.name}"  # the sweep's ${now:} reached the worker


def test_ddp_job_inside_a_sweep_is_refused_before_starting_workers(compose_train):
    """In a -m job, Lightning's rank 1 would re-run sys.argv: the whole sweep."""
    import lightning as L
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.strategies import DDPStrategy
    from omegaconf import read_write

    from simgan.errors import ConfigError
    from simgan.training import _refuse_relaunch_inside_sweep, train

    cfg = compose_train(*SWEEP_TINY, "trainer=ddp_sim")
    with read_write(HydraConfig.get()):
        HydraConfig.get().mode = RunMode.MULTIRUN
    try:
        with pytest.raises(ConfigError, match="2-process DDP run cannot be a job of a -m sweep"):
            train(cfg)
        one_device = L.Trainer(accelerator="cpu", devices=1, strategy=DDPStrategy(), logger=False)
        _refuse_relaunch_inside_sweep(one_device)  # no worker processes: fine in a sweep
    finally:
        with read_write(HydraConfig.get()):
            HydraConfig.get().mode = RunMode.RUN


def test_slurm_launcher_config_composes_into_the_sbatch_flags_ddp_needs(tmp_path, monkeypatch):
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "experiment=gaze", "trainer.devices=4", "trainer.num_nodes=2",
            "hydra.launcher.partition=gpu", f"paths.log_dir={tmp_path}/logs"])
    GlobalHydra.instance().clear()
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher.pop("_target_").endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    # what hydra-submitit-launcher does with these, up to the sbatch script (a fake srun: no cluster)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(cluster="slurm", folder=launcher.pop("submitit_folder"),
                                     slurm_max_num_timeout=launcher.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in launcher.items()})
    script = executor._executor._make_submission_file_text("python src/train.py", "uid")
    for flag in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu"):
        assert f"#SBATCH {flag}" in script, script
