"""The downstream stage of an evaluation (paper Sec. 3.2, Tables 2/3): which images, which labels.

Three task models, identical but for their training images, all tested on the same
held-out *real* images:

(a) raw synthetic images with their labels,
(b) the same images refined, same labels (what a SimGAN user trains on),
(c) real labeled images: the reference, how good real data of the same size would be.

The task models, their scores and the protocol itself
(:func:`simgan.metrics.downstream.downstream_scores`) live in :mod:`simgan.metrics.downstream`;
this module decides what they are trained and tested on.

Where the real labeled images come from:

- **your data**: ``downstream.test_store`` (held-out real images with the label
  ``downstream.label``, e.g. MPIIGaze with ``gaze``, NYU hands with joints) and,
  optionally, ``downstream.reference_store`` for (c); without it (c) is skipped.
- **MNIST as the real stream** (``data=digits``, ``data=usps2mnist``): the test set is
  the MNIST split's ``test`` store (2,000 labeled images, stratified), which the refiner
  and discriminator never saw; (c) trains on the images of the *unlabeled* real stream
  (the ones D trained on), with their labels looked up in the ``.npz``
  (:meth:`simgan.data.mnist.MnistSplit.labels_of`), for the reference model only; the
  training store carries none. The two stores are disjoint by construction
  (:func:`simgan.data.mnist.split_indices`).

The three training sets are cut to the same size, ``n_train``, so only their content
differs. Results: ``accuracy_<set>`` for ``task: classify``, ``error_<set>`` (with
``error_measure`` and ``error_unit``) for ``task: regress``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor

from simgan.data.mnist import MnistSplit
from simgan.data.store import StoreDataset
from simgan.data.subsets import first_images, stack
from simgan.errors import ConfigError, DataError
from simgan.evaluation.inputs import refine_images
from simgan.metrics.downstream import downstream_scores


def _read_store(path: str | Path, label: str, n: int | None, what: str) -> tuple[Tensor, Tensor]:
    if not Path(path).is_file():
        raise DataError(f"{path}: downstream.{what}_store not found (a store made by simgan.data.store / "
                        "python -m simgan.data.convert, with the label downstream.label)")
    ds = StoreDataset(path, [label])
    x, rest = stack(ds, 0, n or len(ds), f"read real {what}")
    return x, rest[label]


def real_test_set(real_source, label: str, test_store: str | None, n_test: int | None) -> tuple[Tensor, Tensor]:
    """Held-out labeled real images: ``test_store`` if given, else the MNIST split's test store
    (``real_source``: the DataModule's real source)."""
    if test_store:
        return _read_store(test_store, label, n_test, "test")
    if isinstance(real_source, MnistSplit):
        return _read_store(real_source.side("test").path, label, n_test, "test")
    raise ConfigError(f"downstream: no labeled real test set: set downstream.test_store to a store with "
                      f"label '{label}' (or use data=digits / data=usps2mnist)")


def real_reference_set(datamodule, label: str, reference_store: str | None, n: int) -> tuple[Tensor, Tensor] | None:
    """(c)'s training images: ``reference_store`` if given, else the first ``n`` of the MNIST
    real stream with their ``.npz`` labels; ``None`` when the data has neither."""
    if reference_store:
        return _read_store(reference_store, label, n, "reference")
    real_source = datamodule.real_source
    if not isinstance(real_source, MnistSplit):
        return None
    x, rest = first_images(datamodule.splits, "real", n)
    return x, torch.from_numpy(real_source.labels_of(rest["index"].numpy()))


def _check_labels(name: str, y: Tensor, expected: tuple[int, ...], label: str) -> None:
    if tuple(y.shape[1:]) != expected:
        raise DataError(f"downstream: the {name} images' label '{label}' has shape {tuple(y.shape[1:])}, the "
                        f"synthetic data's has {expected}; a test/reference store must label the same thing")


def headline(results: dict) -> dict[str, float]:
    """The numbers for ``metrics.json``'s flat ``summary``: the score of each training set."""
    return {k: v for k, v in results.items() if k.startswith(("accuracy_", "error_"))
            and isinstance(v, (int, float))}


def evaluate_downstream(cfg: DictConfig, datamodule, sets, refiner, batch_size: int, device: str, seed: int,
                        show_progress: bool) -> tuple[dict, list[str]]:
    """The stage as :mod:`simgan.evaluation.run` calls it: (results, notes).

    ``cfg`` is the ``downstream`` node; ``sets`` the evaluation's image sets (``sets.fit``
    is synthetic, never in ``sets.synthetic``).
    """
    label, notes = cfg.label, []
    n = min(int(cfg.n_train), len(sets.fit))
    reference = real_reference_set(datamodule, label, cfg.get("reference_store"), n)
    if reference is None:
        notes.append("downstream (c) skipped: no labeled real reference set (set downstream.reference_store)")
    else:
        n = min(n, len(reference[0]))  # (a), (b) and (c) get the same number of images
    fit_x, fit_y = sets.fit[:n], sets.fit_labels[label][:n]
    test = real_test_set(datamodule.real_source, label, cfg.get("test_store"), cfg.get("n_test"))
    _check_labels("test", test[1], tuple(fit_y.shape[1:]), label)
    train_sets = {"synthetic": (fit_x, fit_y),
                  "refined": (refine_images(refiner, fit_x, batch_size, device, "refine (downstream)"), fit_y)}
    if reference is not None:
        _check_labels("reference", reference[1], tuple(fit_y.shape[1:]), label)
        train_sets["real"] = (reference[0][:n], reference[1][:n])
    results = downstream_scores(train_sets, test, task=cfg.get("task", "auto"), error=cfg.get("error", "auto"),
                                label=label, seed=seed, epochs=cfg.epochs, time_budget_s=cfg.time_budget_s,
                                device=device, show_progress=show_progress, batch_size=cfg.get("batch_size", 64),
                                lr=cfg.get("lr", 1e-3))
    return results, notes
