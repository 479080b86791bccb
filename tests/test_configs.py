"""Every experiment config composes and trains a few steps; a short run writes its outputs."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from simgan.training import train

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (ROOT / "conf" / "trainer").glob("*.yaml"))


def test_there_are_experiments_to_check():
    assert {"quick", "gaze"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_a_few_steps(experiment, compose_train, tmp_path):
    cfg = compose_train(f"experiment={experiment}", "debug=default")
    metrics = train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "val/d_acc_refined" in metrics


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_configs_compose(trainer, compose_train):
    cfg = compose_train(f"trainer={trainer}")
    OmegaConf.resolve(cfg)
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_gaze_is_paper_scale_and_cpu_override_wins(compose_train):
    gaze = compose_train("experiment=gaze")
    assert gaze.data.batch_size == 512 and gaze.model.schedule.k_g == 50
    assert (gaze.data.height, gaze.data.width) == (35, 55)
    assert gaze.trainer.strategy.find_unused_parameters is True
    assert compose_train("experiment=gaze", "trainer.devices=4").trainer.devices == 4
    on_cpu = compose_train("experiment=gaze", "trainer=cpu")
    assert on_cpu.trainer.accelerator == "cpu" and "strategy" not in on_cpu.trainer


def test_default_run_writes_checkpoint_grid_and_metrics(compose_train, tmp_path, capsys):
    cfg = compose_train("debug=default", "logger=default", "logger.wandb.offline=true")
    train(cfg)
    out = capsys.readouterr().out
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    grids = sorted((tmp_path / "images").glob("*.png"))
    assert tmp_path / "images" / "grid_final.png" in grids and len(grids) >= 2
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "W&B offline run dir missing"
    for where in ("checkpoint:", "image grids:", "metrics:", "W&B run:"):
        assert where in out


def test_last_checkpoint_holds_the_final_step_when_not_a_multiple_of_the_interval(compose_train, tmp_path):
    import torch

    cfg = compose_train("debug=default", "model.schedule.adversarial_steps=7")  # 11 steps, interval 5
    train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 11 and ckpt["simgan_schedule"]["step"] == 11
