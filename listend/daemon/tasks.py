"""Ending a background task without swallowing the caller's own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and return once it has ended; its own error (not its cancellation)
    is raised here.

    ``with suppress(CancelledError): await task`` cannot tell the task's cancellation from a
    cancel aimed at the caller while it waits, and swallows both. ``asyncio.wait`` never
    raises the task's outcome, so a ``CancelledError`` out of it is the caller's and
    propagates.
    """
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.result()  # what the task raised before the cancel reached it
