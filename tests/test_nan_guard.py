"""A diverged run stops with a message naming step, phase and network; last.ckpt stays good.

Two ways to diverge: a NaN in the input (caught in the step, before the optimizer step)
and an infinite learning rate (the step's loss is finite but the new weights are not:
the checkpoint writer refuses them). Both through the entry script's error handling.
"""

from __future__ import annotations

import pytest
import torch

from reliability_helpers import run_dir, tiny_cfg
from simgan.reliability.finite import first_nonfinite, nonfinite_in_checkpoint
from simgan.training import train
from simgan.utils.cli import task_wrapper


def _fails_with(cfg, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        task_wrapper(train)(cfg)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and err[-1] == errors[0], err[-5:]  # one clear line, last
    assert not any("Traceback" in line for line in err)
    return errors[0]


def _assert_good(ckpt, step: int) -> None:
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == step == state["simgan_schedule"]["step"]
    assert nonfinite_in_checkpoint(state) is None


def test_nan_input_stops_the_run_naming_step_phase_network(compose_train, tmp_path, capsys):
    run = run_dir(tmp_path, "nan_input")
    cfg = tiny_cfg(compose_train, run, "+callbacks.poison._target_=reliability_helpers.PoisonInput",
                   "+callbacks.poison.step=10")
    message = _fails_with(cfg, capsys)
    for part in ("non-finite synthetic input", "step 10 of 14", "phase adversarial", "network refiner",
                 f"last good checkpoint: {run / 'checkpoints' / 'last.ckpt'}"):
        assert part in message, message
    _assert_good(run / "checkpoints" / "last.ckpt", 9)
    assert not (run / "checkpoints" / "step000010.ckpt").exists()


def test_infinite_learning_rate_never_overwrites_last_checkpoint(compose_train, tmp_path, capsys):
    run = run_dir(tmp_path, "inf_lr")
    # step 4 is the first D step: its loss is finite, the weights it leaves are not
    message = _fails_with(tiny_cfg(compose_train, run, "model.discriminator_optimizer.lr=inf"), capsys)
    for part in ("non-finite value", "state_dict.discriminator", "at step 4", "phase discriminator_pretrain",
                 "network discriminator", "refusing to write checkpoint", "last good checkpoint"):
        assert part in message, message
    _assert_good(run / "checkpoints" / "last.ckpt", 3)


def test_guard_names_the_first_bad_tensor():
    ok, bad = torch.ones(3), torch.tensor([1.0, float("inf")])
    assert first_nonfinite({"a": ok, "b": ok}) is None
    assert first_nonfinite({"a": ok, "b": bad, "c": bad * float("nan")}) == "b"
