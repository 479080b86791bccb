"""Bad settings fail at start-up with one `error: ...` line naming the setting, exit 2.

Each case runs the real composition and ``train`` behind the entry script's error
handling, with an empty cache dir: the check must come before anything is rendered or
converted (so before the first step too).
"""

from __future__ import annotations

import pytest

from reliability_helpers import run_dir, tiny_cfg
from simgan.training import train
from simgan.utils.cli import task_wrapper

CASES = {
    "k_g": (["model.schedule.k_g=0"], "model.schedule.k_g must be >= 1, got 0"),
    "k_d": (["model.schedule.k_d=0"], "model.schedule.k_d must be >= 1, got 0"),
    "negative_steps": (["model.schedule.discriminator_pretrain_steps=-5"],
                       "model.schedule.discriminator_pretrain_steps must be >= 0, got -5"),
    "batch_larger_than_data": (["data.batch_size=32"],
                               "data.batch_size=32 is larger than the real training split (19 of 24 images"),
    "image_smaller_than_patch": (["data.height=16", "data.width=16"], "16x16 is smaller than the discriminator"),
    "channel_mismatch": (["model.refiner.channels=3"], "model.refiner.channels=3 but the data has 1 channel"),
    "history_not_a_multiple": (["model.history_size=10"],
                               "model.history_size=10 must be 0 or a multiple of data.batch_size/2 = 4"),
    "missing_checkpoint": (["ckpt_path=/nonexistent/last.ckpt"], "ckpt_path=/nonexistent/last.ckpt: checkpoint file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_setting_is_one_clear_error_before_rendering(case, compose_train, tmp_path, capsys):
    overrides, expected = CASES[case]
    cache = tmp_path / "empty_cache"
    run = run_dir(tmp_path, case)
    cfg = tiny_cfg(compose_train, run, f"paths.cache_dir={cache}", *overrides)
    with pytest.raises(SystemExit) as exit_:
        task_wrapper(train)(cfg)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and expected in err[-1], err[-3:]
    assert not any("Traceback" in line for line in err)
    assert not cache.exists() or not any(cache.iterdir()), "rendered before failing"
    assert not (run / "checkpoints").exists()


def test_valid_history_sizes():
    from simgan.validate import check_history_fits_batch

    for size, batch in ((0, 8), (4, 8), (64, 8), (3200, 32), (51200, 512)):
        check_history_fits_batch(size, batch)
