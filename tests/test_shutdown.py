"""Clean shutdown: a real SIGTERM to a real training process saves, explains, and resumes.

Also: a second Ctrl-C aborts at once, and SLURM's requeue signal (Lightning's
auto-requeue handler) is handled at a step boundary, so its hpc checkpoint is consistent.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from reliability_helpers import TINY, run_dir, tiny_cfg
from simgan.reliability.shutdown import GracefulShutdown
from simgan.training import train

ROOT = Path(__file__).resolve().parents[1]


def _wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_prints_how_to_resume_and_resume_works(tmp_path, cache_dir, compose_train):
    endless = "model.schedule.adversarial_steps=100000"
    overrides = [o for o in TINY if not o.startswith("model.schedule.adversarial_steps=")] + [endless]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "src" / "train.py"), *overrides, f"paths.log_dir={tmp_path}/logs",
         f"paths.cache_dir={cache_dir}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        runs = tmp_path / "logs" / "debug" / "runs"
        _wait_for(lambda: any(runs.glob("*/checkpoints/step000003.ckpt")), 180, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    match = re.search(r"Training stopped by SIGTERM after step (\d+) of 100006", err)
    assert match, err[-3000:]
    stopped_at = int(match.group(1))
    command = next(line.strip() for line in err.splitlines() if line.strip().startswith("python "))
    ckpt = Path(re.search(r"ckpt_path=(\S+)", command).group(1))
    assert ckpt.name == "last.ckpt" and ckpt.is_file()
    assert endless in command and "debug=default" in command  # the same run, resumed
    state = torch.load(ckpt, weights_only=True)
    assert state["simgan_schedule"]["step"] == state["global_step"] == stopped_at

    # ckpt_path=last picks it up (here with a schedule that ends 2 steps later)
    resumed = run_dir(tmp_path, "resumed")
    cfg = tiny_cfg(compose_train, resumed, "ckpt_path=last",
                   f"model.schedule.adversarial_steps={stopped_at - 6 + 2}")
    cfg.paths.log_dir = str(tmp_path / "logs")
    train(cfg)
    final = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["simgan_schedule"]["step"] == final["global_step"] == stopped_at + 2


def test_a_second_ctrl_c_aborts_without_waiting(capfd):
    shutdown = GracefulShutdown()
    trainer = SimpleNamespace()  # no SLURM environment: only the stop signals are taken over
    shutdown.on_train_start(trainer, None)
    try:
        os.kill(os.getpid(), signal.SIGINT)  # delivered to this (main) thread's handler at once
        assert shutdown.stopped_by is None  # recorded, acted on at the step's end
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        shutdown.teardown(trainer, None, "fit")
    err = capfd.readouterr().err
    assert "SIGINT received: saving a checkpoint after the current step" in err
    assert "SIGINT again: aborting without saving a checkpoint" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_slurm_requeue_signal_is_handled_at_a_step_boundary(compose_train, tmp_path, monkeypatch):
    """Lightning's SLURM handler writes hpc_ckpt + requeues; a signal inside a step waits for its end."""
    for key, value in {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "simgan",
                       "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no scontrol: the requeue call fails harmlessly
    run = run_dir(tmp_path, "slurm")
    train(tiny_cfg(compose_train, run, "+callbacks.signal_at._target_=reliability_helpers.SignalAt",
                   "+callbacks.signal_at.step=5", "+callbacks.signal_at.signum=SIGUSR1",
                   "+callbacks.signal_at.when=mid_step"))
    hpc = run / "hpc_ckpt_1.ckpt"
    assert hpc.is_file()
    state = torch.load(hpc, weights_only=True)
    # written after step 5 completed: schedule, Lightning and the data position agree
    assert state["simgan_schedule"]["step"] == state["global_step"] == 5
    # the real stream moves on discriminator steps only
    assert state["SimGANDataModule"]["batches_consumed"] == {
        "synthetic": 5, "real": state["simgan_schedule"]["discriminator_steps"]}
