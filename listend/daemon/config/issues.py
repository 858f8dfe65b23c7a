"""Config problems and how they are shown: ``file:line:column: key.path: message``, one a line.

The loader (schema checks) and preflight (checks that build each source) both report through
:class:`ConfigIssue` and :class:`ConfigIssuesError`, and both place an issue in the file with
the :class:`Positions` read from the YAML, so every config error reads the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from listend.daemon.errors import ConfigError

Loc = tuple[str | int, ...]
_STR = "tag:yaml.org,2002:str"
_LONGEST_MESSAGE = 300
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class ConfigIssue:
    path: Loc
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, filename: str) -> str:
        where = filename if self.line is None else f"{filename}:{self.line}:{self.column}"
        message = self.message
        if len(message) > _LONGEST_MESSAGE:  # it quotes a huge value: show where, not all of it
            message = f"{message[: _LONGEST_MESSAGE - 5]} ...{message[-2:]}"
        return f"{where}: {format_path(self.path) or '(top level)'}: {message}"


class ConfigIssuesError(ConfigError):
    """All problems found in one config file, one line each."""

    def __init__(self, filename: str, issues: list[ConfigIssue], *, note: str = "") -> None:
        self.filename = filename
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.column or 0))
        lines = [issue.render(filename) for issue in self.issues]
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        head = f"invalid config {filename} ({count}{note}):"
        super().__init__("\n  ".join([head, *lines]))


def format_path(path: Loc) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class Positions:
    """Where each key path starts in the YAML text (1-based line and column)."""

    def __init__(self, node: yaml.Node | None = None) -> None:
        self.keys: dict[Loc, yaml.Mark] = {}
        self.values: dict[Loc, yaml.Mark] = {}
        self.duplicates: list[tuple[Loc, yaml.Mark]] = []
        #: Keys YAML reads as something other than text (``~:`` is null, ``yes:`` true).
        self.odd_keys: list[tuple[Loc, str, yaml.Mark]] = []
        #: Text with a NUL character (``"\\0"``): no path, name or URL can hold one.
        self.nul_values: list[tuple[Loc, yaml.Mark]] = []
        if node is not None:
            self.walk(node)

    def walk(self, node: yaml.Node, path: Loc = ()) -> None:
        self.values[path] = node.start_mark
        if isinstance(node, yaml.ScalarNode) and "\0" in node.value:
            self.nul_values.append((path, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark))
                seen.add(key)
                self.keys[child] = key_node.start_mark
                if key_node.tag not in (_STR, _MERGE):
                    kind = key_node.tag.rpartition(":")[2] or key_node.tag
                    self.odd_keys.append((child, kind, key_node.start_mark))
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def has(self, path: Loc) -> bool:
        return path in self.keys or path in self.values

    def mark(self, path: Loc, *, key: bool) -> yaml.Mark | None:
        """The key (or value) at ``path``, else the nearest enclosing one that is in the file."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            table = self.keys if key and end == len(path) else self.values
            found = table.get(prefix) or self.keys.get(prefix)
            if found is not None:
                return found
        return None

    def issue(self, path: Loc, message: str, *, key: bool = False) -> ConfigIssue:
        mark = self.mark(path, key=key)
        if mark is None:
            return ConfigIssue(path, message)
        return ConfigIssue(path, message, mark.line + 1, mark.column + 1)
