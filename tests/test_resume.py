"""Exact resume: N steps == N/2 steps + resume from the checkpoint + the rest, bit for bit.

One uninterrupted 14-step run (a checkpoint after every step) is the reference; runs
resumed from its step-c checkpoints must log exactly the same losses for every later
step. Cut points: in the refiner pretraining (2), in the discriminator pretraining (5),
in the middle of a K_g:K_d cycle (7), and right after the history buffer fills (9; the
next D step then replaces random slots, drawn from the global RNG). The streams are
small, so their epochs wrap several times. Also: the sampler's order and DDP shards,
and ``ckpt_path=last``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from reliability_helpers import TOTAL_STEPS, run_dir, tiny_cfg, train_losses
from simgan.data.samplers import ResumableBatchSampler
from simgan.errors import ConfigError
from simgan.errors import TrainingInterrupted
from simgan.reliability.resume import find_last_checkpoint, resolve_ckpt_path
from simgan.training import train

CUTS = {"refiner_pretrain": 2, "discriminator_pretrain": 5, "mid_cycle": 7, "history_just_full": 9}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """The uninterrupted run: (its dir, its losses). Composed like compose_train does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from reliability_helpers import TINY

    root = tmp_path_factory.mktemp("reference")
    run = run_dir(root, "full")
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(os.environ["SIMGAN_ROOT"] + "/conf")):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=[f"paths.cache_dir={cache_dir}", *TINY])
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir, cfg.paths.log_dir = str(run), str(root / "logs")
    train(cfg)
    GlobalHydra.instance().clear()
    losses = train_losses(run)
    assert sorted(losses) == list(range(TOTAL_STEPS))  # one row per step
    return run, losses


@pytest.mark.slow
@pytest.mark.parametrize("where", list(CUTS))
def test_resumed_run_logs_bitwise_equal_losses(where, reference, compose_train, tmp_path):
    cut = CUTS[where]
    full_run, full = reference
    ckpt = full_run / "checkpoints" / f"step{cut:06d}.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert state["simgan_schedule"]["step"] == cut
    if where == "history_just_full":
        assert int(state["state_dict"]["history.filled"]) == 16
    run = run_dir(tmp_path, f"resumed_at_{cut}")
    train(tiny_cfg(compose_train, run, f"ckpt_path={ckpt}"))
    resumed = train_losses(run)
    assert sorted(resumed) == list(range(cut, TOTAL_STEPS))  # logged steps continue the count
    for step in resumed:
        assert resumed[step] == full[step], f"step {step + 1} differs after resuming at step {cut}"


@pytest.mark.slow
def test_run_stopped_by_sigint_resumes_with_ckpt_path_last_bitwise(reference, compose_train, tmp_path):
    """The real path: Ctrl-C during step 8 -> last.ckpt after step 8 -> ckpt_path=last -> same losses."""
    _, full = reference
    first = run_dir(tmp_path, "first")
    signal_at = ["+callbacks.signal_at._target_=reliability_helpers.SignalAt", "+callbacks.signal_at.step=8"]
    with pytest.raises(TrainingInterrupted) as stop:
        train(tiny_cfg(compose_train, first, *signal_at))
    assert stop.value.exit_code == 130 and "after step 8 of 14" in stop.value.message
    last = first / "checkpoints" / "last.ckpt"
    assert f"ckpt_path={last}" in stop.value.message
    assert torch.load(last, weights_only=True)["simgan_schedule"]["step"] == 8
    second = run_dir(tmp_path, "second")
    train(tiny_cfg(compose_train, second, "ckpt_path=last"))
    resumed = train_losses(second)
    assert sorted(resumed) == list(range(8, TOTAL_STEPS))
    assert all(resumed[step] == full[step] for step in resumed)
    assert {k: v for k, v in train_losses(first).items()} == {k: full[k] for k in range(8)}


def test_sampler_order_is_a_function_of_seed_epoch_rank_world():
    a = ResumableBatchSampler(23, 4, seed=7, stream=1)
    assert a.batches_per_epoch == 5
    it = iter(a)
    batches = [next(it) for _ in range(12)]  # crosses two stream epochs
    assert batches == [a.batch(i) for i in range(12)]
    # starting at batch 7 continues the same sequence
    resumed = iter(ResumableBatchSampler(23, 4, seed=7, stream=1, start=7))
    assert [next(resumed) for _ in range(5)] == batches[7:]
    # each epoch is a permutation without repeats; epochs differ; streams and seeds differ
    flat = sum(batches[:5], [])
    assert len(set(flat)) == 20
    assert batches[:5] != batches[5:10]
    assert ResumableBatchSampler(23, 4, seed=7, stream=0).batch(0) != a.batch(0)
    assert ResumableBatchSampler(23, 4, seed=8, stream=1).batch(0) != a.batch(0)


def test_sampler_shards_are_disjoint_across_ranks():
    world = 3
    shards = [ResumableBatchSampler(50, 4, seed=0, stream=0, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        orders = [set(s.epoch_order(epoch).tolist()) for s in shards]
        assert all(len(o) == 50 // world for o in orders)
        assert not (orders[0] & orders[1] or orders[0] & orders[2] or orders[1] & orders[2])
    assert shards[0].batches_per_epoch == (50 // world) // 4
    with pytest.raises(ConfigError, match="data.batch_size=4 is larger than the real training split per device"):
        ResumableBatchSampler(10, 4, seed=0, stream=1, rank=0, world_size=4, name="real")


def test_datamodule_counts_consumed_batches_not_prefetched_ones(compose_train, tmp_path):
    """Resume position = batches the loop took (synthetic) and the D steps drew (real); the
    loader's own iterator runs ahead; only the images travel to the device."""
    from hydra.utils import instantiate

    cfg = tiny_cfg(compose_train, run_dir(tmp_path, "dm"))
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    dm.load_state_dict({"batches_consumed": {"synthetic": 3, "real": 2}})
    first, _, _ = next(iter(dm.train_dataloader()))
    assert set(first) == {"synthetic"}  # no real batch unless a step asks for one
    expected = dm.train_sampler("synthetic").batch(3)
    ds = dm.splits["synthetic_train"]
    assert first["synthetic"]["index"].tolist() == [int(ds.indices[i]) for i in expected]
    assert dm.state_dict()["batches_consumed"] == {"synthetic": 3, "real": 2}  # iterating alone does not count
    real = dm.real_batch()
    real_split = dm.splits["real_train"]
    assert set(real) == {"image"} and torch.equal(
        real["image"], torch.stack([real_split[i]["image"] for i in dm.train_sampler("real").batch(2)]))
    assert dm.state_dict()["batches_consumed"] == {"synthetic": 3, "real": 3}
    dm.load_state_dict({"train_batches_consumed": 4})  # a checkpoint from when both streams moved every step
    assert dm.batches_consumed == {"synthetic": 4, "real": 4}


def test_ckpt_path_last_finds_the_newest_previous_run(tmp_path):
    runs = tmp_path / "logs" / "train" / "runs"
    old = runs / "2024-01-01_00-00-00" / "checkpoints" / "last.ckpt"
    new = runs / "2024-01-02_00-00-00" / "checkpoints" / "last.ckpt"
    hpc = runs / "2024-01-03_00-00-00" / "hpc_ckpt_1.ckpt"
    for i, path in enumerate((old, new, hpc)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))
    assert find_last_checkpoint(tmp_path / "logs", "train") == hpc  # SLURM's requeue checkpoint counts
    hpc.unlink()
    assert resolve_ckpt_path("last", tmp_path / "logs", "train") == str(new)
    assert resolve_ckpt_path("last", tmp_path / "logs", "other_task") is None  # fresh start
    assert resolve_ckpt_path(None, tmp_path / "logs", "train") is None
    with pytest.raises(ConfigError, match="ckpt_path=.*missing.ckpt: checkpoint file not found"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path / "logs", "train")


def test_sampler_epoch_order_is_stable_across_processes():
    # A pure function of its inputs (no global RNG): pinned so a numpy change cannot slip by.
    order = ResumableBatchSampler(10, 2, seed=0, stream=0).epoch_order(0)
    assert sorted(order.tolist()) == list(range(10))
    assert np.array_equal(order, np.random.default_rng([0, 0, 0]).permutation(10))
