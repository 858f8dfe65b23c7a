"""Turn a config file into data without trusting it: bounded size, UTF-8 only, bounded YAML.

A config may be anything a user (or a bad deploy) put at the path: a binary file, UTF-16 from
an editor, a 60 MB log, brackets nested 5000 deep (Python's recursion limit) or an alias bomb
(a few hundred bytes that expand to billions of nodes). Each is refused here with one
``file:line:column`` message, before anything walks the data, so neither ``validate`` nor a
reload of the running daemon can be made to exhaust memory, the stack or the CPU.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from listend.daemon.config.issues import ConfigIssue, ConfigIssuesError, Positions
from listend.daemon.errors import ConfigError

#: Largest config file read; real ones are a few kB.
MAX_CONFIG_BYTES = 1024 * 1024
#: Deepest nesting of mappings and lists; real configs nest about 5 levels.
MAX_DEPTH = 64
#: Most YAML nodes once every alias is expanded (what validating the data would walk).
MAX_NODES = 100_000

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def read_config_text(path: Path) -> str:
    """The file as text, or one :class:`ConfigError` saying why it is not a config."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise ConfigError(f"cannot read config {path!r}: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is larger than {MAX_CONFIG_BYTES // 1024 // 1024} MB, the limit; "
            "is it the right file?"
        )
    return decode_config(data, str(path))


def decode_config(data: bytes, filename: str) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise _at_offset(data, 0, filename, f"the file is {name}; save it as UTF-8")
    nul = data.find(b"\0")
    if nul >= 0:
        raise _at_offset(data, nul, filename, "a NUL byte: this is a binary file, not YAML")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        message = f"not UTF-8 (byte 0x{byte:02x}); save the file as UTF-8"
        raise _at_offset(data, exc.start, filename, message) from None


def _at_offset(data: bytes, offset: int, filename: str, message: str) -> ConfigIssuesError:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return ConfigIssuesError(filename, [ConfigIssue((), message, line, column)])


class _LimitError(yaml.MarkedYAMLError):
    """The document is over one of the limits; raised while composing, at the offending node."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting and the expanded size of every node while composing.

    PyYAML shares an aliased node rather than copying it, so the bomb goes off later, in
    whatever walks the data as a tree; counting each node's expanded size here (an alias
    counts as the whole node it names) catches it at the alias, before anything is built.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark: yaml.Mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise _LimitError(
                    problem="an alias refers to a node that contains it", problem_mark=mark
                )
            self._count(size, mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _LimitError(
                problem=f"nested more than {MAX_DEPTH} levels deep, the limit", problem_mark=mark
            )
        before = self._expanded
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(1, mark)
        self._sizes[id(node)] = self._expanded - before
        return node

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._expanded += nodes
        if self._expanded > MAX_NODES:
            raise _LimitError(
                problem=f"more than {MAX_NODES} values once aliases are expanded, the limit "
                "(an alias bomb?)",
                problem_mark=mark,
            )


def compose_config(text: str, filename: str) -> tuple[Any, Positions]:
    """The data in ``text`` and where each key is; one ConfigIssuesError if it is not usable."""
    try:
        loader = _BoundedLoader(text)  # checks for unprintable characters at once
    except yaml.YAMLError as exc:
        raise ConfigIssuesError(filename, [ConfigIssue((), f"not valid YAML: {exc}")]) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        issue = ConfigIssue((), f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
        if mark is not None:
            issue = ConfigIssue((), issue.message, mark.line + 1, mark.column + 1)
        raise ConfigIssuesError(filename, [issue]) from None
    except ValueError as exc:  # a constructor's: a 5000-digit number, a 13th month
        raise ConfigIssuesError(filename, [ConfigIssue((), f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return data, Positions(node)
