"""The dead-letter file of a sink: what will never be delivered, kept for a person to read.

One JSON object per line in ``<state_dir>/dead-letter/<sink>.jsonl``, fsynced before the
outbox forgets the events: those a sink rejected for good (``event``) and outbox rows that are
no event this version can read (``payload``, the stored text).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from listend.daemon.delivery.outbox import Rejected
from listend.daemon.events import AnyEvent, to_json

log = logging.getLogger(__name__)


def dead_letter_path(state_dir: Path, sink: str) -> Path:
    return state_dir / "dead-letter" / f"{sink}.jsonl"


async def write_dead_letters(
    path: Path, sink: str, error: str, records: Iterable[Mapping[str, Any]]
) -> None:
    """Append one line per record (``sink``, ``failed_at`` and ``error`` added), fsynced."""
    failed_at = datetime.now(UTC).isoformat()
    lines = "".join(
        json.dumps({"sink": sink, "failed_at": failed_at, "error": error, **record}) + "\n"
        for record in records
    )
    await asyncio.to_thread(_append_synced, path, lines)


async def dead_letter_events(path: Path, sink: str, events: Sequence[AnyEvent], error: str) -> None:
    """Events the sink rejected for good."""
    records = [{"event": json.loads(to_json(event))} for event in events]
    await write_dead_letters(path, sink, error, records)
    log.error("sink %s: %d event(s) rejected and written to %s: %s", sink, len(events), path, error)


async def dead_letter_rows(path: Path, sink: str, rows: Sequence[Rejected]) -> None:
    """Outbox rows that are no event this version reads, with their stored text."""
    records = [{"error": f"unreadable outbox row: {r.error}", "payload": r.payload} for r in rows]
    await write_dead_letters(path, sink, "", records)
    log.error(
        "sink %s: %d outbox row(s) could not be read as events (%s) and were written to %s",
        sink,
        len(rows),
        rows[0].error,
        path,
    )


def _append_synced(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
