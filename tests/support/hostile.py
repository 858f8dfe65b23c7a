"""Hostile config files: each a way a config can be wrong that once crashed or fooled listend.

``HOSTILE`` is the table the config fuzz test and the reload tests share: a name, the bytes of
the file (a function of the state directory, so a file that would otherwise be valid is), and
a fragment of the one message it must get.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import ROOT

HELLO = ROOT / "config" / "samples" / "hello.wav"


def good_config(state: Path, *, extra: str = "", source: str = "") -> str:
    """A valid config: one file source, one stdout sink, ``extra`` top-level lines."""
    source = source or f"  hall:\n    type: file\n    path: {HELLO}\n"
    sinks = "sinks:\n  out: {type: stdout}\n"
    return f"device: fuzz\nstate_dir: {state}\n{extra}sources:\n{source}{sinks}"


def alias_bomb(levels: int = 9) -> str:
    """``levels`` lists of ten aliases to the one before: 10**levels nodes, in 300 bytes."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        items = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{items}]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    make: Callable[[Path], bytes]
    expect: str  # in the message
    exit_code: int = 78

    def data(self, state: Path) -> bytes:
        return self.make(state)


def _text(fn: Callable[[Path], str]) -> Callable[[Path], bytes]:
    return lambda state: fn(state).encode("utf-8")


def _good(state: Path) -> str:
    return good_config(state)


def _with(name: str, extra: str, expect: str) -> Hostile:
    """A valid config plus the top-level lines ``extra``."""
    return Hostile(name, _text(lambda s: good_config(s, extra=extra)), expect)


HOSTILE: list[Hostile] = [
    # -- not text ----------------------------------------------------------------------------
    Hostile("binary", lambda s: bytes(range(256)) * 4, "NUL byte: this is a binary file"),
    Hostile("utf16", lambda s: _good(s).encode("utf-16"), "the file is UTF-16"),
    Hostile("utf32", lambda s: _good(s).encode("utf-32"), "the file is UTF-32"),
    Hostile("latin1", lambda s: _good(s).encode() + b"# caf\xe9\n", "not UTF-8 (byte 0xe9)"),
    Hostile("truncated-utf8", lambda s: _good(s).encode() + b"# \xe2\x82", "not UTF-8"),
    Hostile("control-char", lambda s: _good(s).encode() + b"# \x07\n", "not valid YAML"),
    Hostile("too-big", lambda s: b"# padding\n" * 120_000, "larger than 1 MB"),
    # -- YAML that is expensive or recursive ---------------------------------------------------
    Hostile("deep-brackets", _text(lambda s: "a: " + "[" * 5000 + "]" * 5000 + "\n"), "nested"),
    Hostile("deep-braces", _text(lambda s: "a: " + "{a: " * 3000 + "1" + "}" * 3000), "nested"),
    Hostile(
        "deep-block",
        _text(lambda s: "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "x"),
        "nested more than 64 levels",
    ),
    Hostile("alias-bomb", _text(lambda s: alias_bomb()), "an alias bomb?"),
    Hostile("merge-bomb", _text(lambda s: alias_bomb(7) + "sources: {<<: *a6}\n"), "alias bomb"),
    Hostile("recursive-alias", _text(lambda s: "a: &a [*a]\n"), "refers to a node that"),
    Hostile("huge-int", _text(lambda s: good_config(s, extra=f"x: {'9' * 5000}\n")), "digits"),
    Hostile("bad-date", _text(lambda s: good_config(s, extra="x: 2026-13-45\n")), "month"),
    Hostile("python-tag", _text(lambda s: "a: !!python/object/apply:os.system [id]\n"), "YAML"),
    Hostile("unhashable-key", _text(lambda s: "? [a, b]\n: c\n"), "not valid YAML"),
    Hostile("two-documents", _text(lambda s: _good(s) + "---\nb: 2\n"), "another document"),
    Hostile("tab-indent", _text(lambda s: "sources:\n\thall: {}\n"), "not valid YAML"),
    Hostile("unclosed", _text(lambda s: "sources: {hall: [\n"), "not valid YAML"),
    Hostile("undefined-alias", _text(lambda s: "a: *nowhere\n"), "not valid YAML"),
    # -- the wrong shape -----------------------------------------------------------------------
    Hostile("empty", lambda s: b"", "no sources"),
    Hostile("comments-only", lambda s: b"# nothing here\n", "no sources"),
    Hostile(
        "no-sources",
        _text(lambda s: f"state_dir: {s}\nsinks: {{o: {{type: stdout}}}}\n"),
        "no sources",
    ),
    Hostile("empty-sources", _text(lambda s: f"state_dir: {s}\nsources: {{}}\n"), "no sources"),
    Hostile("a-list", _text(lambda s: "- a\n- b\n"), "expected a mapping"),
    Hostile("a-scalar", _text(lambda s: "hello\n"), "expected a mapping"),
    Hostile("sources-a-list", _text(lambda s: "sources: [a, b]\n"), "expected a mapping of name"),
    Hostile(
        "null-key",
        _text(lambda s: good_config(s, source=f"  ~: {{type: file, path: {HELLO}}}\n")),
        "key is read as null",
    ),
    Hostile(
        "bool-key",
        _text(lambda s: good_config(s, source=f"  yes: {{type: file, path: {HELLO}}}\n")),
        "key is read as bool",
    ),
    Hostile(
        "int-key",
        _text(lambda s: good_config(s, source=f"  1: {{type: file, path: {HELLO}}}\n")),
        "key is read as int",
    ),
    Hostile("duplicate-key", _text(lambda s: _good(s) + "device: again\n"), "duplicate key"),
    Hostile(
        "nul-in-path",
        _text(lambda s: good_config(s, source='  hall: {type: file, path: "/tmp/a\\0b"}\n')),
        "contains a NUL character",
    ),
    Hostile("nul-in-state-dir", _text(lambda s: _good(s).replace(f"{s}", f'"{s}\\0x"')), "NUL"),
    Hostile(
        "unknown-type",
        _text(lambda s: good_config(s, source="  hall: {type: telepathy}\n")),
        "unknown source type 'telepathy'",
    ),
    Hostile(
        "huge-value",
        _text(lambda s: _good(s).replace("device: fuzz", "device: " + "x!" * 200_000)),
        "found 'x!x!",
    ),
    # -- numbers that parse but mean nothing --------------------------------------------------
    _with("infinite-timeout", "deepgram: {finalize_timeout: 1e999}\n", "allowed: 0 < value <= 60"),
    _with("nan-timeout", "deepgram: {finalize_timeout: .nan}\n", "allowed: 0 < value <= 60"),
    _with(
        "absurd-replay-buffer",
        "deepgram: {replay_buffer_seconds: 1e39}\n",
        "allowed: 0 <= value <= 600",
    ),
    _with("negative-drain", "drain_timeout: -1\n", "allowed: 0 < value <= 3600"),
    Hostile(
        "huge-outbox",
        _text(
            lambda s: _good(s).replace(
                "{type: stdout}", "{type: stdout, outbox: {max_events: 1.0e+12}}"
            )
        ),
        "allowed: 1 <= value <= 100000000",
    ),
    # -- secrets that are not secrets -----------------------------------------------------------
    _with("secret-from-dev-zero", "deepgram: {api_key: $file:/dev/zero}\n", "not a regular file"),
    _with("secret-a-directory", "deepgram: {api_key: $file:/etc}\n", "not a regular file"),
    # -- a state directory the daemon cannot use ------------------------------------------------
    Hostile(
        "state-dir-a-file",
        _text(lambda s: _good(s).replace(f"{s}", "/etc/passwd")),
        "is not a directory",
    ),
    Hostile(
        "state-dir-under-a-file",
        _text(lambda s: _good(s).replace(f"{s}", "/etc/passwd/listend")),
        "/etc/passwd is not a directory",
    ),
    # -- unusual but valid -----------------------------------------------------------------------
    Hostile("utf8-bom", lambda s: b"\xef\xbb\xbf" + _good(s).encode(), "ok", exit_code=0),
    Hostile("crlf", lambda s: _good(s).replace("\n", "\r\n").encode(), "ok", exit_code=0),
    Hostile("small-aliases", _text(lambda s: "x: &x 1\n" + _good(s) + "y: *x\n"), "unknown key"),
]
