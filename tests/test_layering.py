"""The architecture rules, checked on the real import graph.

``leukview.core`` must import neither Qt nor torch, and nothing under
``leukview`` may import ``training``: a pathologist's install has neither.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = {"PySide6", "PyQt5", "PyQt6", "shiboken6", "torch", "torchvision", "timm", "xgboost"}
FORBIDDEN_IN_APP = {"training", "torch", "torchvision", "timm", "xgboost"}


def imported_roots(path: Path) -> set[str]:
    """Top-level module names a file imports, including lazy imports inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_neither_qt_nor_torch():
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN_IN_CORE)
        for p in (ROOT / "leukview" / "core").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_app_never_imports_training_or_torch():
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_roots(p) & FORBIDDEN_IN_APP)
        for p in (ROOT / "leukview").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_loads_without_qt_or_torch_at_runtime():
    # Also catches imports hidden behind importlib or a third-party module.
    code = (
        "import sys, pkgutil, importlib, leukview.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('leukview.core.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        f"{sorted(FORBIDDEN_IN_CORE)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        import pytest

        pytest.skip("import-linter not installed")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycle_in_the_app():
    grimp = __import__("pytest").importorskip("grimp")
    graph = grimp.build_graph("leukview", cache_dir=None)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported == importer or not imported.startswith("leukview"):
                continue
            # a package's __init__ re-exporting its own private modules is not a cycle
            if imported.startswith(importer + ".") or importer.startswith(imported + "."):
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back and not any(m.startswith(importer + ".") for m in back[1:-1]):
                cycles.append(" -> ".join([importer, *back[1:]]))
    assert cycles == []
