"""The private Lightning APIs the project relies on still exist and behave as used.

``pyproject.toml`` pins ``lightning<2.7``; this test is what a bump of that bound must
pass. Each entry names where the project uses it and why no public API serves:

- ``_SubprocessScriptLauncher`` (``simgan.training``): the launcher that re-runs
  ``sys.argv`` for ranks 1..; under a Hydra multirun that would re-run the whole sweep.
- ``_format_summary_table`` (``simgan.callbacks.progress``): Lightning's model-summary
  table, printed without the always-zero FLOPs column.
- ``Trainer._accelerator_connector.cluster_environment``
  (``simgan.reliability.shutdown``): the SLURM environment and its requeue signal, which
  a single-device strategy does not expose.
- ``RichProgressBar._get_train_description`` and ``train_progress_bar_id``
  (``simgan.callbacks.progress``): the bar's description, replaced by the phase.
"""

from __future__ import annotations

import inspect

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table


def test_accelerator_connector_holds_the_cluster_environment():
    from lightning.fabric.plugins.environments import ClusterEnvironment

    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False)
    assert isinstance(trainer._accelerator_connector.cluster_environment, ClusterEnvironment)


def test_subprocess_launcher_has_what_the_sweep_guard_reads():
    params = inspect.signature(_SubprocessScriptLauncher.__init__).parameters
    assert {"cluster_environment", "num_processes", "num_nodes"} <= set(params)
    assert isinstance(inspect.getattr_static(_SubprocessScriptLauncher, "is_interactive_compatible"), property)


def test_summary_table_formatter_takes_totals_then_columns():
    params = list(inspect.signature(_format_summary_table).parameters)
    assert params[:5] == ["total_parameters", "trainable_parameters", "model_size", "total_training_modes",
                          "total_flops"]
    table = _format_summary_table(10, 10, 0.0, {"train": 1, "eval": 0}, 0, [" ", ["0"]], ["Name", ["net"]])
    assert "net" in table and "Total Flops" in table  # the line the project's summary removes


def test_rich_bar_description_hook():
    assert callable(getattr(RichProgressBar, "_get_train_description", None))
    assert "train_progress_bar_id" in RichProgressBar().__dict__
