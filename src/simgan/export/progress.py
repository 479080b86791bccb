"""A progress bar in images (not batches) per second, on rank 0 only.

Lightning's bar counts batches of one rank. This one counts images for the whole run:
rank 0's batches times the world size (ranks get equal shares of chunks, so this is
the run's rate to within one chunk per rank), starting from the images a resumed run
already had.
"""

from __future__ import annotations

import time

from lightning.pytorch import Callback
from tqdm.auto import tqdm


class ImagesProgress(Callback):
    def __init__(self, total: int):
        self.total = int(total)
        self.bar: tqdm | None = None
        self.seconds = 0.0  # the predict loop's time on this rank (no process start-up)

    def on_predict_start(self, trainer, pl_module) -> None:
        self._started = time.perf_counter()
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        done = self.total - dm.todo_images
        self.bar = tqdm(total=self.total, initial=done, unit="img", unit_scale=True, desc="refine", dynamic_ncols=True,
                        smoothing=0.1)
        self._world = trainer.world_size

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.bar is not None:
            step = (int(batch["stop"]) - int(batch["start"])) * self._world
            self.bar.update(min(step, self.bar.total - self.bar.n))

    def on_predict_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self._started
        self._close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # ends the bar's line, so the error (or the stop message) printed next starts a line of its own
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
