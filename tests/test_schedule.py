"""The three-phase schedule (Algorithm 1): which network each step trains, and its state."""

from pathlib import Path

import pytest

from simgan.schedule import DISCRIMINATOR as D
from simgan.schedule import REFINER as R
from simgan.schedule import Phase, PhaseSchedule


def run(schedule: PhaseSchedule, steps: int, d_loss: float | None = None) -> list[str]:
    seen = []
    for _ in range(steps):
        seen.append(schedule.network)
        schedule.advance(d_loss=d_loss if schedule.network == D else None)
    return seen


def test_phases_then_k_g_to_k_d_cycles():
    s = PhaseSchedule(refiner_pretrain_steps=3, discriminator_pretrain_steps=2, adversarial_steps=10, k_g=3, k_d=2)
    assert s.total_steps == 15
    assert run(s, 15) == [R] * 3 + [D] * 2 + [R, R, R, D, D] * 2
    assert (s.refiner_steps, s.discriminator_steps) == (9, 6)


def test_phase_names_follow_the_step():
    s = PhaseSchedule(refiner_pretrain_steps=1, discriminator_pretrain_steps=1, adversarial_steps=1, k_g=1, k_d=1)
    phases = []
    for _ in range(3):
        phases.append(s.phase)
        s.advance()
    assert phases == ["refiner_pretrain", "discriminator_pretrain", "adversarial"] == list(Phase)
    assert [s.phase_of(step) for step in range(3)] == phases and [p.number for p in phases] == [0, 1, 2]


def test_adaptive_k_g_rises_while_d_wins_and_falls_when_it_loses():
    adaptive = {"enabled": True, "k_g_min": 1, "k_g_max": 3, "d_loss_low": 0.5, "d_loss_high": 1.2}
    s = PhaseSchedule(0, 0, 100, k_g=1, k_d=1, adaptive=adaptive)
    run(s, 2, d_loss=0.1)  # one cycle, D wins
    assert s.k_g == 2
    run(s, 3 + 4, d_loss=0.1)
    assert s.k_g == 3  # capped at k_g_max
    run(s, 4, d_loss=2.0)  # D loses
    assert s.k_g == 2


def test_adaptive_off_keeps_k_g():
    s = PhaseSchedule(0, 0, 100, k_g=2, k_d=1)
    run(s, 30, d_loss=0.01)
    assert s.k_g == 2


def test_state_round_trip_resumes_mid_cycle():
    s = PhaseSchedule(2, 2, 20, k_g=3, k_d=1)
    run(s, 7)
    resumed = PhaseSchedule(2, 2, 20, k_g=3, k_d=1)
    resumed.load_state_dict(s.state_dict())
    assert run(resumed, 10) == run(s, 10)


@pytest.mark.parametrize("field,value", [("k_g", 0), ("k_d", 0), ("adversarial_steps", -1)])
def test_bad_settings_are_rejected_by_name(field, value):
    good = {"refiner_pretrain_steps": 1, "discriminator_pretrain_steps": 1, "adversarial_steps": 1, "k_g": 1, "k_d": 1}
    with pytest.raises(ValueError, match=field):
        PhaseSchedule(**{**good, field: value})


def test_the_config_is_the_one_source_of_schedule_defaults():
    # no value is restated in code: every setting must come from conf/model/simgan.yaml
    from omegaconf import OmegaConf

    with pytest.raises(TypeError):
        PhaseSchedule()
    cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "model" / "simgan.yaml").schedule
    s = PhaseSchedule(**OmegaConf.to_container(cfg))
    assert s.total_steps == cfg.refiner_pretrain_steps + cfg.discriminator_pretrain_steps + cfg.adversarial_steps
    assert not s.adapts and s.adaptive.k_g_max == cfg.adaptive.k_g_max
