"""The downstream protocol (paper Sec. 3.2, Tables 2/3) and the labeled real sets it needs.

Three task models, identical but for their training images, all tested on the same
held-out *real* images:

(a) raw synthetic images with their labels,
(b) the same images refined, same labels (what a SimGAN user trains on),
(c) real labeled images: the reference, how good real data of the same size would be.

Where the real labeled images come from (digits, real stream = :class:`simgan.data.mnist.MnistSplit`):

- **test**: the MNIST split's ``test`` store (2,000 labeled images, stratified). The refiner
  and discriminator never saw it.
- **reference (c)**: the images of the *unlabeled* real stream (the ones D trained on),
  with their labels looked up in the ``.npz`` through the store's ``source_indices``
  attribute. Those labels are read here, for the reference model only; the training
  store carries none. The two stores are disjoint by construction (``split_indices``).

Any other data can name its own labeled stores (``downstream.test_store``,
``downstream.reference_store``: stores with the label ``downstream.label``).
The three sets are cut to the same size, ``n_train``, so only their content differs.
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
from simgan.evaluation.inputs import stack
from simgan.metrics.downstream import classifier_accuracy, fit_classifier

log = logging.getLogger("simgan")


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


def real_test_set(real_cfg: DictConfig, label: str, test_store: str | None,
                  n_test: int | None) -> tuple[Tensor, Tensor]:
    """Held-out labeled real images: ``test_store`` if given, else the MNIST split's test store."""
    if test_store:
        path = Path(test_store)
    elif _is_mnist(real_cfg):
        path = _mnist_split(real_cfg, "test").path
    else:
        raise ConfigError("downstream: no labeled real test set: set downstream.test_store to a store with "
                          f"label '{label}' (or use data=digits)")
    ds = StoreDataset(path, [label])
    x, rest = stack(ds, 0, n_test or len(ds), "read real test")
    return x, rest[label]


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
                  reference_store: str | None, n: int) -> tuple[Tensor, Tensor]:
    """(c)'s training images: ``reference_store`` if given, else the real stream with npz labels."""
    if reference_store:
        ds = StoreDataset(reference_store, [label])
        x, rest = stack(ds, 0, n, "read real reference")
        return x, rest[label]
    if not _is_mnist(real_cfg):
        raise ConfigError("downstream: no labeled real reference set: set downstream.reference_store "
                          f"to a store with label '{label}' (or use data=digits)")
    x, rest = stack(real_pool, 0, n, "read real reference")
    return x, reference_labels(real_cfg, real_datamodule_store, rest["index"])


def downstream(train_sets: dict[str, tuple[Tensor, Tensor]], test: tuple[Tensor, Tensor], seed: int = 0,
               epochs: int = 10, time_budget_s: float | None = 120.0, num_classes: int | None = None,
               device: str = "cpu", show_progress: bool = True) -> dict[str, float]:
    """``accuracy_<name>`` on ``test`` of a LeNet trained on each of ``train_sets`` (same seed)."""
    x_test, y_test = test
    k = num_classes or int(max([y_test.max(), *(y.max() for _, y in train_sets.values())])) + 1
    out = {}
    for name, (x, y) in train_sets.items():
        model = fit_classifier(x, y, seed=seed, epochs=epochs, num_classes=k, time_budget_s=time_budget_s,
                               device=device, show_progress=show_progress).cpu()
        out[f"accuracy_{name}"] = classifier_accuracy(model, x_test, y_test)
        out[f"n_train_{name}"] = len(x)
        log.info("downstream: trained on %s (%d images) -> %.4f on held-out real", name, len(x),
                 out[f"accuracy_{name}"])
    out["n_test"] = len(x_test)
    return out
