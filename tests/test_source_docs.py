"""The README documents every option of every built-in source, with the model's defaults."""

from __future__ import annotations

import json
import re

import pytest
from pydantic_core import PydanticUndefined

from listend.daemon.plugin.manager import load_plugins
from listend.daemon.plugin.source import SourceConfig
from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text()


def section(type_name: str) -> str:
    match = re.search(rf"^#### `{type_name}`\n(.*?)(?=^###)", README, re.MULTILINE | re.DOTALL)
    assert match, f"README has no '#### `{type_name}`' section"
    return match.group(1)


def as_yaml(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else json.dumps(value)


@pytest.mark.parametrize("type_name", ["microphone", "file", "command"])
def test_every_option_is_documented_with_its_default(type_name):
    cls = load_plugins().sources.get(type_name)
    assert cls is not None
    model = cls.config_model
    text = section(type_name)
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|", text, re.MULTILINE))
    own = {k: f for k, f in model.model_fields.items() if k not in SourceConfig.model_fields}
    assert set(rows) == set(own), "README table rows differ from the config model"
    for name, field in own.items():
        default = field.default
        if default is PydanticUndefined:
            default = {} if field.default_factory is dict else None
        if rows[name].startswith("`"):
            assert rows[name] == f"`{as_yaml(default)}`", name
        else:
            assert default is None, f"{name}: README says {rows[name]!r}, model {default!r}"
