"""The dead-letter file of a sink: what will never be delivered, kept for a person to read.

One JSON object per line in ``<state_dir>/dead-letter/<sink>.jsonl``, fsynced before the
outbox forgets the events: those a sink rejected for good (``event``) and outbox rows that are
no event this version can read (``payload``, the stored text).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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


def _append_synced(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
