"""A process killed while writing a checkpoint leaves the previous last.ckpt whole and loadable.

The real thing: a subprocess overwriting last.ckpt is SIGKILLed in the middle of the
write (the subprocess's torch.save pauses after its first bytes). And the in-process version: a write that
fails half-way. Training uses this writer: see test_nan_guard (it refuses NaN weights).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from simgan.reliability import checkpoint_io
from simgan.reliability.checkpoint_io import AtomicCheckpointIO, atomic_torch_save


def _checkpoint(version: int) -> dict:
    return {"version": version, "state_dict": {"w": torch.full((256, 256), float(version))}}


@pytest.mark.slow
def test_killed_during_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(1), path)
    script = textwrap.dedent(f"""
        import time
        import torch
        from simgan.reliability.checkpoint_io import AtomicCheckpointIO

        class PausingFile:  # sleeps after the first bytes are on disk: the dangerous moment
            def __init__(self, f):
                self.f, self.paused = f, False
            def write(self, data):
                n = self.f.write(data)
                if not self.paused:
                    self.paused = True
                    self.f.flush()
                    time.sleep(60)
                return n
            def flush(self):
                self.f.flush()

        save = torch.save
        torch.save = lambda obj, f: save(obj, PausingFile(f))
        AtomicCheckpointIO().save_checkpoint(
            {{"version": 2, "state_dict": {{"w": torch.full((256, 256), 2.0)}}}}, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not [p for p in path.parent.iterdir() if p.name.endswith(".partial") and p.stat().st_size > 0]:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the save never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # mid-write: no handler, no cleanup
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = torch.load(path, weights_only=True)
    assert state["version"] == 1 and torch.equal(state["state_dict"]["w"], _checkpoint(1)["state_dict"]["w"])
    (orphan,) = [p for p in path.parent.iterdir() if p.name.endswith(".partial")]  # the killed writer's
    alive = path.with_name(f".{path.name}.{os.getppid()}.partial")  # a live process's write in progress
    alive.write_bytes(b"in progress")
    AtomicCheckpointIO().save_checkpoint(_checkpoint(3), path)  # the next write cleans up after the dead one
    assert torch.load(path, weights_only=True)["version"] == 3
    assert not orphan.exists() and alive.exists()


def test_failed_write_keeps_previous_checkpoint_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save(_checkpoint(1), path)

    def half_a_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_io.torch, "save", half_a_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save(_checkpoint(2), path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_trainer_writes_through_the_atomic_writer(compose_train):
    from hydra.utils import instantiate

    from simgan.reliability.checkpoint_io import trainer_plugins

    cfg = compose_train("debug=default")
    trainer = instantiate(cfg.trainer, plugins=trainer_plugins(cfg.trainer), logger=False, enable_checkpointing=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
