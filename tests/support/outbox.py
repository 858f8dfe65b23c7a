"""A sink's outbox as a test sees it: leave events in it, read back what is left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from listend.daemon.delivery.outbox import Outbox
from listend.daemon.delivery.worker import outbox_path


def _outbox(path: Path) -> Outbox:
    return Outbox(path, max_events=10**6)


async def store(box: Outbox, *events: Any, keep_through: int = 0) -> list[Any]:
    """Store ``events`` in an open outbox as the sink worker does: staged, then committed in
    one fsynced transaction. Returns the events dropped for room."""
    return await box.commit(box.stage(events), keep_through=keep_through)


async def seed_outbox(state_dir: Path, sink: str, events: list[Any]) -> None:
    """Leave events in a sink's outbox, as a daemon killed before delivering them would."""
    box = _outbox(outbox_path(state_dir, sink))
    await box.open()
    for event in events:
        await store(box, event)
    await box.close()


async def outbox_ids(state_dir: Path, sink: str) -> list[str]:
    """The ids still in a sink's outbox, oldest first."""
    box = _outbox(outbox_path(state_dir, sink))
    await box.open()
    ids = [q.event.id for q in await box.peek(10**6)]
    await box.close()
    return ids
