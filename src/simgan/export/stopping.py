"""SIGTERM / Ctrl-C during a refine: finish the chunk being refined, keep what is done, stop.

A refine's unit of work and of resume is the chunk file (:mod:`simgan.export.parts`).
While the predict loop runs, :class:`~simgan.reliability.signals.StopSignals` records the
signal; after the batch that completes a chunk, this callback waits until the finished
chunks are on disk, then raises :class:`~simgan.errors.Interrupted` with
the command that resumes (``resume=true``); the entry script prints it and exits with
``128 + signum`` (143 / 130), as training does. A second Ctrl-C aborts at once; the
finished chunk files are whole either way. Under DDP each rank stops at its own next
chunk boundary (a terminal's Ctrl-C and ``scancel`` signal every rank).
"""

from __future__ import annotations

from lightning.pytorch import Callback

from simgan.export.parts import Parts
from simgan.export.writer import ChunkWriter
from simgan.reliability.resume import resume_command
from simgan.reliability.signals import StopSignals


class StopAtChunkBoundary(Callback):
    def __init__(self, writer: ChunkWriter, parts: Parts):
        self.writer = writer
        self.parts = parts
        self._signals: StopSignals | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        self._signals = StopSignals().__enter__()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._signals is None or not self._signals.received or not self.writer.between_chunks:
            return
        self.writer.flush()
        self._signals.raise_if_stopped(self._message)

    def _message(self, name: str) -> str:
        done = len(self.parts.done())
        return "\n".join([
            "",
            f"Refine stopped by {name}: {done} of {self.parts.num_chunks} chunks are finished and kept in "
            f"{self.parts.dir}/ (nothing was written at the output yet).",
            "Resume with:",
            f"  {resume_command(script='refine.py', replace={'resume': 'true'})}",
        ])

    def _release(self) -> None:
        if self._signals is not None:
            self._signals.__exit__(None, None, None)
            self._signals = None

    def on_predict_end(self, trainer, pl_module) -> None:
        self._release()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._release()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._release()
