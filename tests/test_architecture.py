"""The import rules of docs/architecture.md, read from the source with ``ast``.

Every import counts: top level, inside a function, and under ``if TYPE_CHECKING:`` (a type-only
arrow still couples the modules). Arrows point inward: plugins -> ``listend.api`` -> the core
(``listend.daemon``); the engine, the test kit and the CLI sit outside the core and may use
it, never the reverse; and nothing imports in a circle, neither modules nor packages.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "listend"


@dataclass(frozen=True)
class Arrow:
    """``importer`` imports ``imported`` at ``path:line``."""

    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.imported}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def _resolve(name: str) -> str | None:
    """The listend module an import of ``name`` loads (a package's ``__init__`` for a package),
    or None for anything outside listend."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, importer: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:  # relative: from the importer's package (a package is its own)
        is_package = MODULES[importer].name == "__init__.py"
        package = (
            importer.rsplit(".", node.level - is_package)[0]
            if node.level - is_package
            else importer
        )
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in MODULES else base


def arrows_of(name: str) -> list[Arrow]:
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):  # every import: top level, function-local, TYPE_CHECKING
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, name):
                imported = _resolve(target)
                if imported is not None and imported != name:
                    rel = str(path.relative_to(ROOT))
                    found.append(Arrow(name, imported, rel, node.lineno))
    return found


ARROWS = [arrow for name in MODULES for arrow in arrows_of(name)]


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def find_cycles(arrows: list[Arrow], unit: Callable[[str], str]) -> list[list[Arrow]]:
    """One cycle per strongly connected group of units (Tarjan), as the arrows that close it."""
    edges: dict[str, dict[str, Arrow]] = {}
    for arrow in arrows:
        a, b = unit(arrow.importer), unit(arrow.imported)
        if a != b:
            edges.setdefault(a, {}).setdefault(b, arrow)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_a_cycle(group, edges) for group in groups]


def _a_cycle(group: set[str], edges: dict[str, dict[str, Arrow]]) -> list[Arrow]:
    """A shortest circle through the group's first member, found breadth first."""
    start = min(group)
    paths: dict[str, list[Arrow]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt, arrow in sorted(edges.get(node, {}).items()):
                if nxt == start:
                    return [*paths[node], arrow]
                if nxt in group and nxt not in paths:
                    paths[nxt] = [*paths[node], arrow]
                    following.append(nxt)
        frontier = following
    return []


def _report(cycles: list[list[Arrow]], what: str) -> str:
    lines = [f"import cycle between {what}:"]
    lines.extend("  " + " ; ".join(str(arrow) for arrow in cycle) for cycle in cycles)
    return "\n".join(lines)


def package_of(module: str) -> str:
    """The package a module belongs to; a module directly in ``listend`` is its own unit."""
    is_package = MODULES[module].name == "__init__.py"
    if is_package or module.count(".") <= 1:
        return module
    return module.rpartition(".")[0]


def component_of(module: str) -> str:
    """``listend.daemon``, ``listend.engine``, ...; a module directly in listend is its own."""
    return ".".join(module.split(".")[:2])


def test_the_graph_is_read():
    assert "listend.daemon.stream.session" in MODULES
    assert any(a.imported == "listend.daemon.stream.replay" for a in ARROWS)


def test_no_module_imports_in_a_circle():
    cycles = find_cycles(ARROWS, lambda module: module)
    assert not cycles, _report(cycles, "modules")


@pytest.mark.parametrize(
    ("what", "unit"),
    [("packages", package_of), ("components", component_of)],
)
def test_no_package_imports_in_a_circle(what, unit):
    cycles = find_cycles(ARROWS, unit)
    assert not cycles, _report(cycles, what)


#: importer package -> packages it must not import, and why
FORBIDDEN: list[tuple[str, Callable[[str], bool], str]] = [
    (
        "listend.plugins",
        lambda imported: not within(imported, "listend.api", "listend.plugins"),
        "plugins import only listend.api and each other",
    ),
    (
        "listend.daemon",
        lambda imported: within(
            imported,
            "listend.plugins",
            "listend.engine",
            "listend.testing",
            "listend.cli",
            "listend.transcribe",
            "listend.dgproto",
            "listend.api",
        ),
        "the core imports no plugin, engine, test kit, CLI or protocol server",
    ),
    (
        "listend.api",
        lambda imported: within(
            imported, "listend.plugins", "listend.engine", "listend.testing", "listend.cli"
        ),
        "the plugin API is the core's, not the engine's or the test kit's",
    ),
]


@pytest.mark.parametrize(
    ("importer", "forbidden", "rule"), FORBIDDEN, ids=[importer for importer, *_ in FORBIDDEN]
)
def test_arrows_point_inward(importer, forbidden, rule):
    wrong = [a for a in ARROWS if within(a.importer, importer) and forbidden(a.imported)]
    assert not wrong, f"{rule}:\n" + "\n".join(f"  {arrow}" for arrow in wrong)


def external_imports(name: str) -> set[str]:
    """Top-level names of the packages outside listend that ``name`` imports."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    return found - {"listend"}


#: third-party package -> the only listend packages or modules that may import it
CONTAINED = {
    # Home Assistant's protocol stays behind two doors: the server, and the engine's client
    "wyoming": ("listend.daemon.wyoming", "listend.engine.wyoming_client"),
    "zeroconf": ("listend.daemon.wyoming",),
}


@pytest.mark.parametrize(("library", "homes"), sorted(CONTAINED.items()))
def test_protocol_libraries_stay_in_their_package(library, homes):
    wrong = [
        name
        for name in MODULES
        if library in external_imports(name) and not any(within(name, home) for home in homes)
    ]
    assert not wrong, f"only {homes} import {library}: {wrong}"


def test_the_wyoming_server_is_wired_by_the_service_not_the_reverse():
    wrong = [
        a
        for a in ARROWS
        if within(a.importer, "listend.daemon.wyoming")
        and within(a.imported, "listend.daemon.service")
    ]
    assert not wrong, "\n".join(map(str, wrong))
