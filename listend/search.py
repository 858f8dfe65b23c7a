"""``listend search``: what was said, from the ``history`` sink's database (read-only).

It reads the database directly (no running daemon needed); the captions page serves the same
search over HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml
from pydantic import ValidationError

from listend.daemon.config.loader import find_config
from listend.daemon.config.models import DEFAULT_STATE_DIR
from listend.daemon.config.reading import compose_config, read_config_text
from listend.daemon.errors import ListendError
from listend.subtitles import srt_cue

if TYPE_CHECKING:  # the history plugin's modules: imported by the command, not by its options
    from listend.plugins.history_store import Hit

HIGHLIGHT = ("\x1b[1;33m", "\x1b[0m")  # bold yellow, on a terminal


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("query", help="words that must all occur (word* for a prefix)")
    sub.add_argument("--db", type=Path, help="the history database (default: the config's)")
    sub.add_argument("--sink", help="which history sink of the config (default: the first)")
    sub.add_argument("--source", action="append", default=[], help="only this source")
    sub.add_argument("--since", help="2h, 30m, 7d ago, or a date/time (2026-12-01T08:00)")
    sub.add_argument("--until", help="the same, exclusive")
    sub.add_argument("--limit", type=int, default=50, help="the newest N matches (default 50)")
    sub.add_argument(
        "--format",
        choices=["text", "jsonl", "srt"],
        default="text",
        help="text (highlighted on a terminal), jsonl (the events) or srt (finals as cues)",
    )


def database_of(config: str | None, sink: str | None) -> Path:
    """The history sink's database, read from the config file without resolving its secrets
    (``sudo listend search`` has no service credentials)."""
    path = find_config(config)
    try:
        raw, _positions = compose_config(read_config_text(path), str(path))  # bounded YAML
        raw = raw or {}
        default = os.environ.get("STATE_DIRECTORY") or DEFAULT_STATE_DIR
        state_dir = Path(raw.get("state_dir") or default)
        sinks = raw.get("sinks") or {}
        found = [
            options
            for name, options in sinks.items()
            if isinstance(options, dict)
            and options.get("type") == "history"
            and sink in (None, name)
        ]
        if not found:
            what = "no history sink" if sink is None else f"no history sink {sink!r}"
            raise ListendError(f"{path}: {what} (type: history); or give --db PATH")
        from listend.plugins.history_sink import HistorySinkConfig, history_path  # noqa: PLC0415

        return history_path(HistorySinkConfig.model_validate(found[0]), state_dir)
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ListendError(
            f"{path}: not a valid config ({exc}); `listend validate` says more"
        ) from None


def run(args: argparse.Namespace, db: Path, out: TextIO = sys.stdout) -> int:
    from listend.plugins.history_store import HistoryStore, parse_when  # noqa: PLC0415

    try:
        since = None if args.since is None else parse_when(args.since)
        until = None if args.until is None else parse_when(args.until)
    except ValueError as exc:
        raise ListendError(str(exc)) from None
    terminal = args.format == "text" and out.isatty()
    try:
        store = HistoryStore(db, readonly=True)
    except (FileNotFoundError, OSError) as exc:
        raise ListendError(str(exc)) from None
    try:
        hits = store.search(
            args.query,
            sources=args.source,
            since=since,
            until=until,
            limit=args.limit,
            marks=HIGHLIGHT if terminal else ("", ""),
        )
    except ValueError as exc:
        raise ListendError(f"search: {exc}") from None
    finally:
        store.close()
    out.write(render(hits, args.format))
    return 0 if hits else 1


def render(hits: list[Hit], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(hit.event) + "\n" for hit in hits)
    if fmt == "srt":
        finals = [h.event for h in hits if h.event.get("type") == "transcript"]
        return "".join(srt_cue(i, e["start"], e["end"], e["text"]) for i, e in enumerate(finals, 1))
    return "".join(text_line(hit) + "\n" for hit in hits)


def text_line(hit: Hit) -> str:
    event: dict[str, Any] = hit.event
    when = datetime.fromisoformat(event["started_at"]).astimezone()
    head = f"{when:%Y-%m-%d %H:%M:%S}  {event['source']}"
    if event.get("type") == "phrase":
        return f"{head}  phrase {event['trigger']} {event['status']}: {hit.snippet}"
    return f"{head}  {hit.snippet}"
