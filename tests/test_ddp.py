"""DDP for real: 2 CPU processes (``trainer=ddp_sim``, gloo) through all three phases.

``src/train.py`` runs in a subprocess (in pytest, Lightning's ``ddp``
re-executes pytest as rank 1); a test callback (``scaling_helpers.RankRecorder``) makes
every rank write what it trained. The run must end with the same weights on both
ranks although they saw disjoint data (so every optimizer step's gradients were
all-reduced), step the same network at every step, log the same (all-reduced) D loss,
keep different history buffers, write ONE run dir, and leave a checkpoint holding every
rank's buffer; a run resumed from it restores each rank's own buffer and ends bit for
bit where the uninterrupted run ended.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from reliability_helpers import NETWORKS, TINY, TOTAL_STEPS
from scaling_helpers import run_train
from simgan.checkpoint import HISTORY_PER_RANK

RESUME_AT = 9  # after the 4th D step: both buffers full (16), a D step (12) still to come
DDP = [*TINY, "trainer=ddp_sim", "model.schedule.adaptive.enabled=true",  # adaptive, but pinned to K_g = 2:
       "model.schedule.adaptive.k_g_min=2", "model.schedule.adaptive.k_g_max=2"]  # it runs on the synced D loss


def _ddp_run(root: Path, cache_dir: Path, *overrides: str) -> tuple[Path, list[dict]]:
    proc = run_train(root, *DDP, f"paths.log_dir={root}/logs", f"paths.cache_dir={cache_dir}",
                     "+callbacks.rank_recorder._target_=scaling_helpers.RankRecorder",
                     f"+callbacks.rank_recorder.dirpath={root}/ranks", *overrides, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert proc.stdout.count("Finished 14 steps") == 1, proc.stdout[-2000:]  # the summary: rank zero only
    (run,) = (root / "logs" / "debug" / "runs").iterdir()
    return run, [torch.load(root / "ranks" / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("ddp")
    run, ranks = _ddp_run(root, cache_dir)
    return root, run, ranks


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_ranks_train_all_phases_in_lockstep(ddp_run):
    _, _, (r0, r1) = ddp_run
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    # the same K_g:K_d schedule on both ranks, through all three phases
    assert r0["networks"] == r1["networks"] == [{"R": "refiner", "D": "discriminator"}[n] for n in NETWORKS]
    assert r0["k_g"] == r1["k_g"]
    # D's logged loss is the mean over ranks (what the adaptive K_g rule sees), identical on both
    assert r0["d_loss"] and r0["d_loss"] == r1["d_loss"]
    # different data, same weights after 14 steps: every optimizer step's gradients were all-reduced
    assert _same_tensors(r0["refiner"], r1["refiner"])
    assert _same_tensors(r0["discriminator"], r1["discriminator"])
    # each rank keeps its own history of its own refined images
    (h0, n0), (h1, n1) = r0["end_history"], r1["end_history"]
    assert n0 == n1 == 16 and not torch.equal(h0, h1)


@pytest.mark.slow
def test_each_rank_draws_a_disjoint_shard_of_both_streams_per_epoch(ddp_run):
    _, _, (r0, r1) = ddp_run
    for stream in ("synthetic", "real"):
        per_epoch = r0["batches_per_epoch"][stream]
        assert per_epoch == r1["batches_per_epoch"][stream] >= 1
        # a synthetic batch every step, a real batch every D step; batch_size is per device
        drawn = TOTAL_STEPS if stream == "synthetic" else NETWORKS.count("D")
        assert len(r0[stream]) == len(r1[stream]) == drawn and all(len(b) == 8 for b in r0[stream])
        for start in range(0, drawn - per_epoch + 1, per_epoch):  # whole stream epochs
            seen = [sum(r[stream][start:start + per_epoch], []) for r in (r0, r1)]
            assert len(set(seen[0])) == len(seen[0]) and len(set(seen[1])) == len(seen[1])
            assert not set(seen[0]) & set(seen[1]), f"{stream} epoch at step {start}: ranks overlap"


@pytest.mark.slow
def test_checkpoint_holds_every_ranks_history_and_only_rank_zero_writes(ddp_run):
    from simgan.module import SimGAN

    root, run, (r0, r1) = ddp_run
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    per_rank = state[HISTORY_PER_RANK]
    assert per_rank["world_size"] == 2 and len(per_rank["images"]) == 2
    for saved, rank in zip(per_rank["images"], (r0, r1)):
        assert torch.equal(saved, rank["end_history"][0][:rank["end_history"][1]])
    assert torch.equal(state["state_dict"]["history.images"], r0["end_history"][0])  # rank zero's, as before
    assert _same_tensors({k[len("refiner."):]: v for k, v in state["state_dict"].items() if k.startswith("refiner.")},
                         r0["refiner"])
    SimGAN.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")  # plain load still works
    # one run dir, no stray Hydra dirs from rank 1, nothing outside logs/
    assert sorted(p.name for p in root.iterdir()) == ["logs", "ranks"]
    assert [p.name for p in (root / "logs").iterdir()] == ["debug"]
    assert [p.name for p in (root / "logs" / "debug").iterdir()] == ["runs"]
    assert {p.name for p in run.iterdir()} <= {".hydra", "checkpoints", "images", "csv", "debug.log"}
    # metrics.csv from rank zero alone: one row per step, D's loss the mean over ranks
    with open(run / "csv" / "metrics.csv", newline="") as f:
        d_rows = {int(row["step"]): float(row["train/d_loss"]) for row in csv.DictReader(f)
                  if row.get("train/d_loss") and NETWORKS[int(row["step"])] == "D"}
    assert d_rows == pytest.approx({step - 1: v for step, v in r0["d_loss"].items()})


@pytest.mark.slow
def test_resume_restores_each_ranks_history_and_continues_exactly(ddp_run, tmp_path, cache_dir):
    _, run, full = ddp_run
    ckpt = run / "checkpoints" / f"step{RESUME_AT:06d}.ckpt"
    saved = torch.load(ckpt, weights_only=True)[HISTORY_PER_RANK]["images"]
    assert not torch.equal(saved[0], saved[1])
    _, resumed = _ddp_run(tmp_path, cache_dir, f"ckpt_path={ckpt}")
    for rank in (0, 1):
        images, filled = resumed[rank]["start_history"]
        assert filled == len(saved[rank]) and torch.equal(images[:filled], saved[rank])
        assert _same_tensors(resumed[rank]["refiner"], full[rank]["refiner"])
        assert _same_tensors(resumed[rank]["discriminator"], full[rank]["discriminator"])
        assert torch.equal(resumed[rank]["end_history"][0], full[rank]["end_history"][0])


def _tiny_module(compose_train):
    from hydra.utils import instantiate

    return instantiate(compose_train(*TINY).model, _recursive_=False)


def test_history_restore_falls_back_to_rank_zero_when_the_world_size_changed(compose_train, caplog):
    model = _tiny_module(compose_train)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    shape = base["history.images"].shape[1:]
    own = [torch.full((n, *shape), float(r + 1)) for r, n in ((0, 16), (1, 5))]

    def load(rank: int, world: int) -> dict:
        checkpoint = {"state_dict": {k: v.clone() for k, v in base.items()},
                      HISTORY_PER_RANK: {"world_size": 2, "images": own}}
        model._trainer = SimpleNamespace(global_rank=rank, world_size=world)
        model.on_load_checkpoint(checkpoint)
        return checkpoint["state_dict"]

    state = load(1, 2)  # same world size: rank 1 gets its own 5 images
    assert int(state["history.filled"]) == 5 and torch.equal(state["history.images"][:5], own[1])
    assert not state["history.images"][5:].any()
    with caplog.at_level(logging.WARNING, logger="simgan"):
        state = load(0, 3)
    assert "history buffers of 2 rank(s), this run has 3" in caplog.text
    assert torch.equal(state["history.images"], base["history.images"])  # untouched: rank zero's
    model._trainer = None
    checkpoint = {"state_dict": dict(base), HISTORY_PER_RANK: {"world_size": 2, "images": own}}
    model.on_load_checkpoint(checkpoint)  # load_from_checkpoint (no trainer): rank zero's, silently
    assert checkpoint["state_dict"]["history.images"] is base["history.images"]
