"""The downstream stage of an evaluation (paper Sec. 3.2, Tables 2/3): which images, which labels.

Three task models, identical but for their training images, all tested on the same
held-out *real* images:

(a) raw synthetic images with their labels,
(b) the same images refined, same labels (what a SimGAN user trains on),
(c) real labeled images: the reference, how good real data of the same size would be.

The task models and their scores live in :mod:`simgan.metrics.downstream`; this module
decides what they are trained and tested on, and names the results.

Where the real labeled images come from:

- **your data**: ``downstream.test_store`` (held-out real images with the label
  ``downstream.label``, e.g. MPIIGaze with ``gaze``, NYU hands with joints) and,
  optionally, ``downstream.reference_store`` for (c); without it (c) is skipped.
- **MNIST as the real stream** (``data=digits``, ``data=usps2mnist``): the test set is
  the MNIST split's ``test`` store (2,000 labeled images, stratified), which the refiner
  and discriminator never saw; (c) trains on the images of the *unlabeled* real stream
  (the ones D trained on), with their labels looked up in the ``.npz`` through the
  store's ``source_indices`` attribute. Those labels are read here, for the reference
  model only; the training store carries none. The two stores are disjoint by
  construction (``split_indices``).

The three training sets are cut to the same size, ``n_train``, so only their content
differs. Results: ``accuracy_<set>`` for ``task: classify``, ``error_<set>`` (with
``error_measure`` and ``error_unit``) for ``task: regress``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from torch import Tensor

from simgan.data.mnist import MnistSplit
from simgan.data.store import StoreDataset
from simgan.errors import ConfigError, DataError
from simgan.evaluation.inputs import refine_images, stack
from simgan.metrics.downstream import (ERROR_UNITS, fit_task_model, num_classes_of, resolve_error, resolve_task,
                                       task_score)

log = logging.getLogger("simgan")
MODEL_NAMES = {"classify": "LeNet", "regress": "CNN regressor"}


def _is_mnist(real_cfg: DictConfig) -> bool:
    try:
        return issubclass(get_class(real_cfg.get("_target_", "")), MnistSplit)
    except Exception:
        return False


def _mnist_split(real_cfg: DictConfig, split: str) -> MnistSplit:
    source = MnistSplit(real_cfg.npz, real_cfg.cache_dir, split=split, n_test=real_cfg.get("n_test", 2000),
                        seed=real_cfg.get("seed", 0))
    source.prepare()
    return source


def _read_store(path: str | Path, label: str, n: int | None, what: str) -> tuple[Tensor, Tensor]:
    if not Path(path).is_file():
        raise DataError(f"{path}: downstream.{what}_store not found (a store made by simgan.data.store / "
                        "python -m simgan.data.convert, with the label downstream.label)")
    ds = StoreDataset(path, [label])
    x, rest = stack(ds, 0, n or len(ds), f"read real {what}")
    return x, rest[label]


def real_test_set(real_cfg: DictConfig, label: str, test_store: str | None,
                  n_test: int | None) -> tuple[Tensor, Tensor]:
    """Held-out labeled real images: ``test_store`` if given, else the MNIST split's test store."""
    if test_store:
        return _read_store(test_store, label, n_test, "test")
    if _is_mnist(real_cfg):
        return _read_store(_mnist_split(real_cfg, "test").path, label, n_test, "test")
    raise ConfigError(f"downstream: no labeled real test set: set downstream.test_store to a store with "
                      f"label '{label}' (or use data=digits / data=usps2mnist)")


def reference_labels(real_cfg: DictConfig, store_path: str | Path, store_index: Tensor) -> Tensor:
    """Labels of real-stream samples (store indices) from the MNIST ``.npz`` they were cut from."""
    with h5py.File(store_path, "r") as f:
        if "source_indices" not in f.attrs:
            raise DataError(f"{store_path}: no 'source_indices' attribute: cannot find the labels of its images")
        source = np.asarray(f.attrs["source_indices"])
    with np.load(real_cfg.npz) as arrays:
        labels = arrays["labels"]
    return torch.from_numpy(labels[source[store_index.numpy()]].astype(np.int64))


def real_reference_set(real_cfg: DictConfig, real_datamodule_store: str | Path, real_pool, label: str,
                       reference_store: str | None, n: int) -> tuple[Tensor, Tensor] | None:
    """(c)'s training images: ``reference_store`` if given, else the MNIST real stream with
    its ``.npz`` labels; ``None`` when the data has neither."""
    if reference_store:
        return _read_store(reference_store, label, n, "reference")
    if not _is_mnist(real_cfg):
        return None
    x, rest = stack(real_pool, 0, n, "read real reference")
    return x, reference_labels(real_cfg, real_datamodule_store, rest["index"])


def _check_labels(name: str, y: Tensor, expected: tuple[int, ...], label: str) -> None:
    if tuple(y.shape[1:]) != expected:
        raise DataError(f"downstream: the {name} images' label '{label}' has shape {tuple(y.shape[1:])}, the "
                        f"synthetic data's has {expected}; a test/reference store must label the same thing")


def downstream(train_sets: dict[str, tuple[Tensor, Tensor]], test: tuple[Tensor, Tensor], task: str = "auto",
               error: str = "auto", label: str = "", seed: int = 0, epochs: int = 10,
               time_budget_s: float | None = 120.0, num_classes: int | None = None, device: str = "cpu",
               show_progress: bool = True, **fit_kwargs) -> dict:
    """A fresh task model per training set (same seed), each scored on ``test``.

    Returns ``accuracy_<name>`` (classify) or ``error_<name>`` (regress), ``n_train_<name>``,
    ``n_test``, ``task``, ``model`` and, for regression, ``error_measure`` / ``error_unit``.
    """
    x_test, y_test = test
    first = next(iter(train_sets.values()))[1]
    task = resolve_task(task, first)
    out: dict = {"task": task, "model": MODEL_NAMES[task], "label": label}
    if task == "classify":
        num_classes = num_classes or num_classes_of(y_test, *(y for _, y in train_sets.values()))
        key = "accuracy"
    else:
        error = resolve_error(error, tuple(y_test.shape[1:]), label)
        out.update(error_measure=error, error_unit=ERROR_UNITS[error])
        key = "error"
    if task == "classify":
        fit_kwargs["num_classes"] = num_classes
    for name, (x, y) in train_sets.items():
        model = fit_task_model(task, x, y, seed=seed, epochs=epochs, time_budget_s=time_budget_s, device=device,
                               show_progress=show_progress, **fit_kwargs).cpu()
        out[f"{key}_{name}"] = task_score(task, model, x_test, y_test, error)
        out[f"n_train_{name}"] = len(x)
        log.info("downstream: %s trained on %s (%d images) -> %s %.4f on held-out real", out["model"], name,
                 len(x), key if task == "classify" else error, out[f"{key}_{name}"])
    out["n_test"] = len(x_test)
    return out


def headline(results: dict) -> dict[str, float]:
    """The numbers for ``metrics.json``'s flat ``summary``: the score of each training set."""
    return {k: v for k, v in results.items() if k.startswith(("accuracy_", "error_"))
            and isinstance(v, (int, float))}


def evaluate_downstream(cfg: DictConfig, data_cfg: DictConfig, datamodule, sets, refiner, batch_size: int,
                        device: str, seed: int, show_progress: bool) -> tuple[dict, list[str]]:
    """The stage as :mod:`simgan.evaluation.run` calls it: (results, notes).

    ``cfg`` is the ``downstream`` node; ``sets`` the evaluation's image sets (``sets.fit``
    is synthetic, never in ``sets.synthetic``).
    """
    label, notes = cfg.label, []
    real_pool = torch.utils.data.ConcatDataset([datamodule.splits["real_val"], datamodule.splits["real_train"]])
    n = min(int(cfg.n_train), len(sets.fit))
    reference = real_reference_set(data_cfg.real, datamodule.real_source.path, real_pool, label,
                                   cfg.get("reference_store"), n)
    if reference is None:
        notes.append("downstream (c) skipped: no labeled real reference set (set downstream.reference_store)")
    else:
        n = min(n, len(reference[0]))  # (a), (b) and (c) get the same number of images
    fit_x, fit_y = sets.fit[:n], sets.fit_labels[label][:n]
    test = real_test_set(data_cfg.real, label, cfg.get("test_store"), cfg.get("n_test"))
    _check_labels("test", test[1], tuple(fit_y.shape[1:]), label)
    train_sets = {"synthetic": (fit_x, fit_y),
                  "refined": (refine_images(refiner, fit_x, batch_size, device, "refine (downstream)"), fit_y)}
    if reference is not None:
        _check_labels("reference", reference[1], tuple(fit_y.shape[1:]), label)
        train_sets["real"] = (reference[0][:n], reference[1][:n])
    results = downstream(train_sets, test, task=cfg.get("task", "auto"), error=cfg.get("error", "auto"),
                         label=label, seed=seed, epochs=cfg.epochs, time_budget_s=cfg.time_budget_s,
                         device=device, show_progress=show_progress, batch_size=cfg.get("batch_size", 64),
                         lr=cfg.get("lr", 1e-3))
    return results, notes
