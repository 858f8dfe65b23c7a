"""Read YAML config and report every problem with file, line, column and key path.

Validation has two steps: the top level with :class:`ListendConfig`, then each source and
sink with the model of the plugin its ``type`` names. All problems are collected and raised
together as one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from listend.daemon.config.models import DEFAULT_CONFIG_PATH, ListendConfig, check_identifier
from listend.daemon.errors import ConfigError
from listend.daemon.plugin.manager import PluginHost, TypeRegistry

Loc = tuple[str | int, ...]
_SECRETISH = ("key", "token", "password", "secret")


@dataclass(frozen=True)
class ConfigIssue:
    path: Loc
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}:{self.column}"
        return f"{where}: {format_path(self.path) or '(top level)'}: {self.message}"


class ConfigIssuesError(ConfigError):
    """All problems found in one config file, one line each."""

    def __init__(self, filename: str, issues: list[ConfigIssue]) -> None:
        self.filename = filename
        self.issues = issues
        lines = [issue.render(filename) for issue in issues]
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        super().__init__(f"invalid config {filename} ({count}):\n  " + "\n  ".join(lines))


def format_path(path: Loc) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def find_config(explicit: str | None) -> Path:
    """``--config``, then ``$LISTEND_CONFIG``, then /etc/listend/listend.yaml."""
    chosen = explicit or os.environ.get("LISTEND_CONFIG")
    path = Path(chosen) if chosen else DEFAULT_CONFIG_PATH
    if not path.is_file():
        how = "--config" if explicit else ("$LISTEND_CONFIG" if chosen else "default path")
        raise ConfigError(f"config file {path} ({how}) does not exist or is not a file")
    return path


class _Positions:
    """Where each key path starts in the YAML text (1-based line and column)."""

    def __init__(self) -> None:
        self.keys: dict[Loc, yaml.Mark] = {}
        self.values: dict[Loc, yaml.Mark] = {}
        self.duplicates: list[tuple[Loc, yaml.Mark]] = []

    def walk(self, node: yaml.Node, path: Loc = ()) -> None:
        self.values[path] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark))
                seen.add(key)
                self.keys[child] = key_node.start_mark
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def mark(self, path: Loc, *, key: bool) -> yaml.Mark | None:
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            table = self.keys if key and end == len(path) else self.values
            found = table.get(prefix) or self.keys.get(prefix)
            if found is not None:
                return found
        return None


def load_config(path: Path, host: PluginHost) -> ListendConfig:
    """Read, parse and validate ``path``; raise :class:`ConfigIssuesError` listing every problem."""
    filename = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {filename}: {exc.strerror}") from None
    return parse_config(text, filename, host)


def parse_config(text: str, filename: str, host: PluginHost) -> ListendConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        issue = ConfigIssue((), f"not valid YAML: {getattr(exc, 'problem', exc)}")
        if mark is not None:
            issue = ConfigIssue((), issue.message, mark.line + 1, mark.column + 1)
        raise ConfigIssuesError(filename, [issue]) from None
    positions = _Positions()
    if node is not None:
        positions.walk(node)
    issues = [
        ConfigIssue(p, "duplicate key", m.line + 1, m.column + 1) for p, m in positions.duplicates
    ]
    if not isinstance(data, dict):
        found = type(data).__name__
        issues.append(ConfigIssue((), f"expected a mapping of settings, found {found}", 1, 1))
        raise ConfigIssuesError(filename, issues)
    config, found_issues = _validate(data, host)
    for path, message, is_key in found_issues:
        mark = positions.mark(path, key=is_key)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        issues.append(ConfigIssue(path, message, line, col))
    if issues or config is None:
        raise ConfigIssuesError(
            filename, sorted(issues, key=lambda i: (i.line or 0, i.column or 0))
        )
    return config


_Found = list[tuple[Loc, str, bool]]


def _validate(data: dict[str, Any], host: PluginHost) -> tuple[ListendConfig | None, _Found]:
    found: _Found = []
    top = {k: v for k, v in data.items() if k not in ("sources", "sinks")}
    sources = _typed_section(data, "sources", host.sources, found)
    sinks = _typed_section(data, "sinks", host.sinks, found)
    try:
        config = ListendConfig.model_validate(top)
    except ValidationError as exc:
        found.extend(_pydantic_issues(exc, (), ListendConfig))
        return None, found
    for name, source in sources.items():
        for index, sink in enumerate(source.sinks or []):
            if sink not in data.get("sinks", {}):
                known = ", ".join(sorted(data.get("sinks") or {})) or "none"
                found.append(
                    (
                        ("sources", name, "sinks", index),
                        f"unknown sink {sink!r}; defined: {known}",
                        False,
                    )
                )
    if found:
        return None, found
    return config.model_copy(update={"sources": sources, "sinks": sinks}), found


def _typed_section(
    data: dict[str, Any], section: str, registry: TypeRegistry[Any], found: _Found
) -> dict[str, Any]:
    raw = data.get(section) or {}
    if not isinstance(raw, dict):
        found.append(
            (
                (section,),
                f"expected a mapping of name → settings, found {type(raw).__name__}",
                False,
            )
        )
        return {}
    out: dict[str, Any] = {}
    for name, options in raw.items():
        path: Loc = (section, str(name))
        try:
            check_identifier(str(name))
        except ValueError as exc:
            found.append((path, f"invalid name: {exc}", True))
        if not isinstance(options, dict):
            found.append(
                (path, f"expected a mapping with a `type`, found {type(options).__name__}", False)
            )
            continue
        type_name = options.get("type")
        cls = registry.get(type_name) if isinstance(type_name, str) else None
        if cls is None:
            installed = ", ".join(registry.names()) or "none"
            what = "missing" if type_name is None else f"unknown {registry.kind} type {type_name!r}"
            hint = _suggest(str(type_name), registry.names())
            found.append(
                ((*path, "type"), f"{what}; installed: {installed}{hint}", type_name is None)
            )
            continue
        try:
            out[str(name)] = cls.config_model.model_validate(options)
        except ValidationError as exc:
            found.extend(_pydantic_issues(exc, path, cls.config_model))
    return out


def _pydantic_issues(
    exc: ValidationError, prefix: Loc, model: type[BaseModel]
) -> Iterator[tuple[Loc, str, bool]]:
    for error in exc.errors(include_url=False):
        loc: Loc = (*prefix, *(p for p in error["loc"] if not _is_union_tag(p)))
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, tuple(error["loc"][:-1]))
            hint = _suggest(str(loc[-1]), allowed)
            yield loc, f"unknown key{hint}; expected one of: {', '.join(allowed)}", True
            continue
        message = error["msg"].removeprefix("Value error, ")
        if kind == "missing":
            yield loc, "required key is missing", True
            continue
        value = error.get("input")
        secret = any(s in str(part).lower() for part in loc for s in _SECRETISH)
        if not secret and isinstance(value, str | int | float | bool) and kind != "value_error":
            message = f"{message}; found {value!r}"
        yield loc, message, False


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and ("[" in part or part in ("function-after", "function-before"))


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    if origin is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation
