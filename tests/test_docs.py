"""The docs document every option of every built-in source and sink, and their links resolve.

docs/sources.md and docs/sinks.md have a `## `type`` section per type with a table whose rows
are that type's options (nested ones as ``parent.child``) and the model's defaults.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.sink import SinkConfig
from listend.daemon.plugin.source import SourceConfig, VadConfig
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.plugin.trigger_options import TriggerConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
#: Nested models documented on a page of their own, not row by row.
DOCUMENTED_ELSEWHERE = (StreamOptions, VadConfig, TriggerConfig)
PLUGINS = load_plugins()


def builtin(registry: Any) -> list[str]:
    return [name for name, cls in registry.items() if cls.__module__.startswith("listend.")]


def section(page: str, heading: str) -> str:
    text = (DOCS / page).read_text()
    pattern = rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)"
    match = re.search(pattern, text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/{page} has no '## {heading}' section"
    return match.group(1)


def rows(text: str) -> dict[str, str]:
    return dict(re.findall(r"^\| `([\w.]+)` \| (.+?) \|", text, re.MULTILINE))


def nested_model(field: FieldInfo) -> type[BaseModel] | None:
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return None if issubclass(candidate, DOCUMENTED_ELSEWHERE) else candidate
    return None


def options(model: type[BaseModel], base: type[BaseModel] | None = None) -> dict[str, FieldInfo]:
    """The model's options (those ``base`` has with the same default left out), flattened."""
    found: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        inherited = base.model_fields.get(name) if base else None
        if inherited is not None and default_of(inherited) == default_of(field):
            continue
        found[name] = field
        sub = nested_model(field)
        if sub is not None:
            found.update({f"{name}.{k}": f for k, f in options(sub).items()})
    return found


def default_of(field: FieldInfo) -> object:
    if field.default is PydanticUndefined and field.default_factory is None:
        return None  # required
    return field.get_default(call_default_factory=True)


def as_yaml(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else json.dumps(value)


def check_table(text: str, fields: dict[str, FieldInfo], where: str) -> None:
    table = rows(text)
    assert set(table) == set(fields), f"{where}: documented options differ from the model"
    for name, field in fields.items():
        default = default_of(field)
        if isinstance(default, BaseModel):
            continue
        if table[name].startswith("`"):
            assert table[name] == f"`{as_yaml(default)}`", f"{where}: {name}"
        else:
            assert default is None, f"{where}: {name}: docs say {table[name]!r}, model {default!r}"


@pytest.mark.parametrize("type_name", builtin(PLUGINS.sources))
def test_every_source_option_is_documented_with_its_default(type_name):
    model = PLUGINS.sources.get(type_name).config_model
    text = section("sources.md", f"`{type_name}`")
    check_table(text, options(model, SourceConfig), f"sources.md `{type_name}`")


@pytest.mark.parametrize("type_name", builtin(PLUGINS.sinks))
def test_every_sink_option_is_documented_with_its_default(type_name):
    model = PLUGINS.sinks.get(type_name).config_model
    text = section("sinks.md", f"`{type_name}`")
    check_table(text, options(model, SinkConfig), f"sinks.md `{type_name}`")


@pytest.mark.parametrize(
    ("page", "heading", "model"),
    [
        ("sources.md", "Options every source has", SourceConfig),
        ("sources.md", "Voice-activity gating (`vad:`)", VadConfig),
        ("sinks.md", "Options every sink has", SinkConfig),
        ("triggers.md", "Options", TriggerConfig),
    ],
)
def test_shared_options_are_documented(page, heading, model):
    check_table(section(page, heading), options(model), f"{page} {heading}")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def without_code_blocks(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def without_code(markdown: str) -> str:
    return re.sub(r"`[^`\n]*`", "", without_code_blocks(markdown))


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    text = without_code_blocks(page.read_text())
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE):
        name, n = slug(heading), 1
        while name in found:
            name, n = f"{slug(heading)}-{n}", n + 1
        found.add(name)
    return found


def links(page: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", without_code(page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.name}: {broken}"


def test_every_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    assert set(DOCS.glob("*.md")) - linked == set()
