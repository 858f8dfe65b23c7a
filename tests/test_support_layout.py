"""Shared test helpers live in tests/support/; conftest.py holds only fixtures."""

from __future__ import annotations

import ast

from tests.support.paths import ROOT


def imported_modules(path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_nothing_imports_from_conftest():
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if "vendor" not in path.parts and "tests.conftest" in imported_modules(path)
    ]
    assert offenders == []


def test_conftest_defines_only_fixtures():
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    helpers = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not any("fixture" in ast.unparse(d) for d in node.decorator_list)
    ]
    assert helpers == []


def test_the_package_ships_no_test_machinery():
    assert not (ROOT / "listend" / "engine" / "evaluation.py").exists()
    users = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "listend").rglob("*.py"))
        if any(m == "tests" or m.startswith("tests.") for m in imported_modules(path))
    ]
    assert users == []
