"""Read YAML config and report every problem with file, line, column and key path.

Validation has two steps: the top level with :class:`ListendConfig`, then each source and
sink with the model of the plugin its ``type`` names. All problems are collected and raised
together as one :class:`ConfigIssuesError`, rendered by :mod:`listend.daemon.config.issues`.
``plugins.disabled`` is read on its own first, since it decides which plugins (and so which
source and sink types) there are.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from listend.daemon.config.fields import allowed_keys, allowed_range
from listend.daemon.config.issues import ConfigIssue, ConfigIssuesError, Loc, Positions
from listend.daemon.config.models import (
    DEFAULT_CONFIG_PATH,
    ListendConfig,
    PluginsConfig,
    check_identifier,
)
from listend.daemon.config.paths import CONFIG_DIR
from listend.daemon.config.reading import compose_config, read_config_text
from listend.daemon.errors import ConfigError
from listend.daemon.plugin.manager import PluginHost, TypeRegistry

_SECRETISH = ("key", "token", "password", "secret")
_BOUND_ERRORS = frozenset(
    ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number")
)
_NO_SOURCES = (
    "no sources: the daemon would have nothing to transcribe (to only deliver what is queued, "
    "define a source with `enabled: false`; to only serve Wyoming requests, configure `wyoming:`)"
)


def find_config(explicit: str | None) -> Path:
    """``--config``, then ``$LISTEND_CONFIG``, then /etc/listend/listend.yaml."""
    chosen = explicit or os.environ.get("LISTEND_CONFIG")
    path = Path(chosen) if chosen else DEFAULT_CONFIG_PATH
    if not path.is_file():
        how = "--config" if explicit else ("$LISTEND_CONFIG" if chosen else "default path")
        raise ConfigError(f"config file {path} ({how}) does not exist or is not a file")
    return path


def load_config(path: Path, host: PluginHost) -> ListendConfig:
    """Read, parse and validate ``path``; raise :class:`ConfigIssuesError` listing every problem."""
    return parse_config(read_config_text(path), str(path), host)


def parse_config(text: str, filename: str, host: PluginHost) -> ListendConfig:
    return parse_config_located(text, filename, host)[0]


def parse_config_located(
    text: str, filename: str, host: PluginHost
) -> tuple[ListendConfig, Positions]:
    """The config and where each of its keys is in ``text``, for checks made after parsing."""
    data, positions = compose_config(text, filename)
    issues = [
        ConfigIssue(p, "duplicate key", m.line + 1, m.column + 1) for p, m in positions.duplicates
    ]
    issues.extend(
        ConfigIssue(p, f"key is read as {kind}, not text; quote it", m.line + 1, m.column + 1)
        for p, kind, m in positions.odd_keys
    )
    issues.extend(
        ConfigIssue(p, "contains a NUL character", m.line + 1, m.column + 1)
        for p, m in positions.nul_values
    )
    if not isinstance(data, dict):
        found = type(data).__name__
        issues.append(ConfigIssue((), f"expected a mapping of settings, found {found}", 1, 1))
        raise ConfigIssuesError(filename, issues)
    config, found_issues = _validate(data, host, {CONFIG_DIR: Path(filename).absolute().parent})
    issues.extend(
        positions.issue(path, message, key=is_key) for path, message, is_key in found_issues
    )
    if issues or config is None:
        raise ConfigIssuesError(filename, issues)
    return config, positions


def read_disabled_plugins(text: str, filename: str) -> list[str]:
    """``plugins.disabled`` alone, read before the plugins are loaded (they shape the schema)."""
    data, positions = compose_config(text, filename)
    if not isinstance(data, dict) or "plugins" not in data:
        return []  # the full parse reports a file that is not a mapping
    try:
        return PluginsConfig.model_validate(data["plugins"]).disabled
    except ValidationError as exc:
        issues = [
            positions.issue(path, message, key=is_key)
            for path, message, is_key in _pydantic_issues(
                exc, ("plugins",), PluginsConfig, data["plugins"]
            )
        ]
        note = "; found in `plugins`, read before loading plugins"
        raise ConfigIssuesError(filename, issues, note=note) from None


_Found = list[tuple[Loc, str, bool]]


def _validate(
    data: dict[str, Any], host: PluginHost, context: dict[str, Any]
) -> tuple[ListendConfig | None, _Found]:
    found: _Found = []
    top = {k: v for k, v in data.items() if k not in ("sources", "sinks")}
    sources = _typed_section(data, "sources", host, host.sources, found, context=context)
    sinks = _typed_section(data, "sinks", host, host.sinks, found, context=context)
    try:
        config = ListendConfig.model_validate(top, context=context)
    except ValidationError as exc:
        found.extend(_pydantic_issues(exc, (), ListendConfig, top))
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
    if not data.get("sources") and not data.get("wyoming"):  # a Wyoming-only daemon is fine
        found.append((("sources",), _NO_SOURCES, "sources" not in data))
    if found:
        return None, found
    return config.model_copy(update={"sources": sources, "sinks": sinks}), found


def _typed_section(
    data: dict[str, Any],
    section: str,
    host: PluginHost,
    registry: TypeRegistry[Any],
    found: _Found,
    *,
    context: dict[str, Any],
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
            hint += host.why_unavailable(registry.kind, str(type_name))
            found.append(
                ((*path, "type"), f"{what}; installed: {installed}{hint}", type_name is None)
            )
            continue
        try:
            out[str(name)] = cls.config_model.model_validate(options, context=context)
        except ValidationError as exc:
            found.extend(_pydantic_issues(exc, path, cls.config_model, options))
        except Exception as exc:  # a plugin validator failing its own way: still a config issue
            why = f"the {type_name} plugin failed to check these settings: {type(exc).__name__}"
            found.append((path, f"{why}: {exc}", True))
    return out


def _pydantic_issues(
    exc: ValidationError, prefix: Loc, model: type[BaseModel], data: object
) -> Iterator[tuple[Loc, str, bool]]:
    for error in exc.errors(include_url=False):
        loc: Loc = (*prefix, *_in_data(error["loc"], data))
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = allowed_keys(model, tuple(error["loc"][:-1]))
            hint = _suggest(str(loc[-1]), allowed)
            yield loc, f"unknown key{hint}; expected one of: {', '.join(allowed)}", True
            continue
        message = error["msg"].removeprefix("Value error, ")
        if kind == "missing":
            yield loc, "required key is missing", True
            continue
        if kind in _BOUND_ERRORS:
            message += allowed_range(model, tuple(error["loc"]))
        value = error.get("input")
        secret = any(s in str(part).lower() for part in loc for s in _SECRETISH)
        if not secret and isinstance(value, str | int | float | bool) and kind != "value_error":
            message = f"{message}; found {_shown(value)}"
        yield loc, message, False


def _in_data(loc: tuple[str | int, ...], data: object) -> Loc:
    """Pydantic's location less its union tags (``function-after[...]``, ``int``): the parts
    that are keys or indexes in the data. The last part stays: a key that is not allowed."""
    out: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        found = isinstance(current, dict) and part in current
        found = found or (
            isinstance(current, list) and isinstance(part, int) and part < len(current)
        )
        if found:
            current = current[part]  # type: ignore[index]
        elif index < len(loc) - 1 or not isinstance(current, dict):
            continue  # a tag
        out.append(part)
    return tuple(out)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(value: object, limit: int = 60) -> str:
    """A found value as the message shows it: a 500 kB scalar must not become a 500 kB line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"
