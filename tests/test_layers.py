"""The package layers: ``simgan.reliability`` sits below the core and imports none of it.

Reliability code (atomic writes, disk-full, signals, resume paths, the NaN guard) is used
by the core, the data layer and the export; if it imported any of them, a change in the
core could break the guards that protect every run, and import cycles would follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "simgan"
BELOW_THE_CORE = {"simgan.errors", "simgan.reliability"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "simgan" or name.startswith("simgan.")}


def test_reliability_imports_nothing_above_it():
    offending = {}
    for path in sorted((PACKAGE / "reliability").glob("*.py")):
        above = {m for m in _imports(path) if not any(m == b or m.startswith(b + ".") for b in BELOW_THE_CORE)}
        if above:
            offending[path.name] = sorted(above)
    assert not offending, f"simgan.reliability imports the layers above it: {offending}"


def test_errors_module_is_the_only_home_of_project_errors():
    homes = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id.endswith(("Error", "Interrupted")) for b in node.bases):
                homes.setdefault(str(path.relative_to(PACKAGE)), []).append(node.name)
    assert set(homes) == {"errors.py"}, homes
