"""The layout's promises (issue 7), kept by a test: a small top level, modules and
functions small enough to read in one sitting, and no import cycle, deferred imports
included. Generated migrations are exempt from the size rules."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "nurture"
FILES = {
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in PACKAGE.rglob("*.py")
}
SIZED = {m: p for m, p in FILES.items() if "migrations" not in p.parts}


def test_at_most_ten_top_level_modules() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 10


def test_no_module_over_450_lines() -> None:
    long = {m: n for m, p in SIZED.items() if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}


def test_no_function_over_120_lines() -> None:
    long = [
        f"{m}.{node.name}: {node.end_lineno - node.lineno + 1}"
        for m, p in SIZED.items()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or 0) - node.lineno + 1 > 120
    ]
    assert long == []


def _owner(name: str) -> str | None:
    """The nurture module a dotted name belongs to (its longest known prefix)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in FILES:
        parts.pop()
    return ".".join(parts) or None


def _imports(module: str, path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            owner = _owner(name) if name.startswith("nurture") else None
            if owner is None or owner == module:
                continue
            found.add(owner)
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            parts = owner.split(".")
            found.update(
                parent
                for i in range(1, len(parts))
                if (parent := ".".join(parts[:i])) in FILES and not module.startswith(parent)
            )
    return found


def test_no_import_cycles_deferred_imports_included() -> None:
    graph = {m: _imports(m, p) for m, p in FILES.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {exc.args[1]}") from None


def test_no_test_module_imports_another() -> None:
    """Shared pieces live in helper modules (tests/helpers.py, integration/support.py,
    browser/audit.py, the contract), never in a test module another one imports."""
    tests = PACKAGE.parent / "tests"
    found = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [
                f"{path.relative_to(tests)}: {n}"
                for n in names
                if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")
            ]
    assert found == []
