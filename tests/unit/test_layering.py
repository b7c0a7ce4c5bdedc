"""The core package imports no orchestrator: only `genline.cli` may (lazily) reach the adapters.

Every file under src/genline/ is parsed with ast, so imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "genline"
FORBIDDEN = ("kfp", "dagster", "components", "pipelines", "dagster_project")
ADAPTER = PACKAGE / "cli"  # the top adapter: may import them, inside functions only


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    out: list[tuple[ast.stmt, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node, node.module))
    return out


def _forbidden(name: str) -> bool:
    return name.split(".")[0] in FORBIDDEN


def _module_level(tree: ast.Module) -> set[int]:
    """ids of import statements that run at import time (not inside a def)."""
    found: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.add(id(child))
            visit(child)

    visit(tree)
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_the_package():
    files = _sources()
    assert len(files) > 20 and (PACKAGE / "data.py") in files


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_no_orchestrator(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [(node.lineno, name) for node, name in _imports(tree) if _forbidden(name)]
    if path.is_relative_to(ADAPTER):
        eager = _module_level(tree)
        found = _imports(tree)
        bad = [(n.lineno, name) for n, name in found if _forbidden(name) and id(n) in eager]
        assert not bad, f"{path}: cli imports {bad} at import time; import them inside the command"
        return
    assert not bad, (
        f"{path.relative_to(PACKAGE.parent)} imports {bad}: the core must not depend on "
        f"{', '.join(FORBIDDEN)}; move the call into cli/, components/ or dagster_project/"
    )


def test_the_scan_catches_an_import_inside_a_function():
    tree = ast.parse("def f():\n    from dagster_project.defs import assets\n")
    assert [name for _, name in _imports(tree) if _forbidden(name)] == ["dagster_project.defs"]
    assert not _module_level(tree)
