"""The console commands of an installed simgan, and the tasks the clone's entry scripts run.

    simgan-train [overrides]      = python src/train.py [overrides]
    simgan-refine ckpt_path=... input=... output=...
    simgan-evaluate ckpt_path=...
    simgan-convert FORMAT SRC DST = python -m simgan.data.convert FORMAT SRC DST
    simgan-bench [--quick]        = python -m simgan.bench

The Hydra configs and the embedded data sets ship inside the package
(``simgan/conf``, ``simgan/embedded_data``: in a clone these are links to ``conf/`` and
``data/``, in a wheel copies of them), so the commands work from any folder. Run from
a folder, they keep what they write there, as ``python src/train.py`` keeps it in the
clone: ``./logs/`` (``paths.root_dir`` is the current folder) and the render cache in
``./data/cache/``, while the embedded data (MPIIGaze eyes, MNIST, USPS) are read from the
package (``paths.data_dir``). Any ``paths.*`` given on the command line wins; with
``paths.data_dir=...`` the cache is ``<data_dir>/cache`` as in the clone.

The task functions (``train_task`` ...) are the one body of each command, shared with
``src/train.py``, ``src/refine.py`` and ``src/evaluate.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

PACKAGE = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE / "conf"
DATA_DIR = PACKAGE / "embedded_data"


def train_task(cfg) -> float | None:
    from simgan.training import train

    metrics = train(cfg)
    # Hydra sweepers (Optuna) minimize/maximize what main returns.
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


def refine_task(cfg) -> None:
    from simgan.export.refine import refine

    refine(cfg)


def evaluate_task(cfg) -> None:
    from simgan.evaluation.run import evaluate

    results = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    shown = {k: round(v, 4) for k, v in results["summary"].items() if not k.endswith("_std")}
    print(f"\nEvaluation written to {out}/ (metrics.json, report.md, "
          f"{', '.join(results['meta']['figures'].values())})\n  {shown}", flush=True)


def installed_path_overrides(argv: list[str]) -> list[str]:
    """The ``paths.*`` overrides that make an installed command read the packaged data, unless given."""
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in argv if "=" in arg}
    extra = []
    if "paths.data_dir" not in given:
        extra.append(f"paths.data_dir={DATA_DIR}")
        if "paths.cache_dir" not in given:
            extra.append("paths.cache_dir=${paths.root_dir}/data/cache")
    return extra


def _hydra_command(config_name: str, task: Callable) -> Callable[[], None]:
    def command() -> None:
        os.environ.setdefault("SIMGAN_ROOT", os.getcwd())
        # Before Hydra parses sys.argv; a DDP run's worker processes re-run this argv, which
        # then already names the paths (so they are added once).
        sys.argv[1:] = installed_path_overrides(sys.argv[1:]) + sys.argv[1:]
        # Lightning before Hydra sets up logging, as the clone's scripts import it: Lightning
        # then keeps its console handler and its lines are not printed twice.
        import hydra
        import lightning.pytorch  # noqa: F401

        from simgan.utils.cli import task_wrapper

        hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(task_wrapper(task))()

    command.__name__ = f"simgan_{config_name}"
    return command


train = _hydra_command("train", train_task)
refine = _hydra_command("refine", refine_task)
evaluate = _hydra_command("evaluate", evaluate_task)


def convert() -> None:
    from simgan.data.convert.__main__ import main

    sys.exit(main())


def bench() -> None:
    from simgan.bench.__main__ import main

    main()
