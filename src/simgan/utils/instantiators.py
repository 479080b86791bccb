"""Building a config group of ``_target_`` nodes (``callbacks``, ``logger``) into objects.

A group maps names to nodes so that one command line can drop a member
(``~callbacks.refined_grid``) or add one; a node without ``_target_`` (a comment, a
null) is skipped. Training builds its callbacks and loggers, evaluation its loggers,
with this one function.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """The objects of every ``_target_`` node in ``group``, in the group's order."""
    return [instantiate(node) for node in (group or {}).values() if isinstance(node, DictConfig) and "_target_" in node]
