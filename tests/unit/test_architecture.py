"""The layout's dependency direction (DESIGN.md "Layout") and each package's public surface."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"schemas", "detectors", "stream", "alerts", "qualitywatch"}
ALLOWED = {
    "schemas": set(),
    "detectors": {"schemas"},
    "stream": {"schemas", "detectors"},
    "alerts": {"schemas"},
    "qualitywatch": {"schemas", "detectors", "stream", "alerts"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependency_direction(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) - ALLOWED[package] - {package}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "mod.py"
    bad.write_text("from stream.app import x\nimport alerts\nfrom . import sibling\n", encoding="utf-8")
    assert _imports(bad) == {"stream", "alerts"}


@pytest.mark.parametrize("package", ["schemas", "detectors"])
def test_public_surface(package: str) -> None:
    mod = importlib.import_module(package)
    assert mod.__doc__ and mod.__doc__.strip(), f"{package} needs a docstring saying what it is for"
    exported = mod.__all__
    assert sorted(exported) == sorted(set(exported)), "duplicates in __all__"
    for name in exported:
        assert hasattr(mod, name), f"{package}.__all__ names {name!r} which does not exist"
    public = {n for n in vars(mod) if not n.startswith("_") and not isinstance(getattr(mod, n), type(mod))}
    assert public <= set(exported) | {"annotations"}, (
        f"unexported public names: {sorted(public - set(exported))}"
    )
