"""The local engine inside the daemon: started when the configuration needs it, stopped last.

It is needed when no Deepgram credentials are configured (``deepgram.url: local`` is implied)
and when a source has ``fallback: local``. Sessions reach it at its loopback URL through the
same SDK code as Deepgram.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from listend.daemon.config.models import ListendConfig
from listend.daemon.errors import ListendError

if TYPE_CHECKING:
    from listend.engine.server import LocalEngine

log = logging.getLogger(__name__)

#: ``deepgram.finalize_timeout`` when the engine decodes finals with Whisper (or a Wyoming
#: server) and the config leaves it unset: a Finalize waits for every utterance still queued
#: for a decode (0.6 s each on two x86 cores, 2-5 s on a Raspberry Pi 4), not 3 s.
SLOW_FINALS_FINALIZE_TIMEOUT = 15.0


def local_sources(config: ListendConfig) -> list[str]:
    """Enabled sources (and the Wyoming server) that may stream to the local engine."""
    everyone = config.deepgram.uses_local_engine()
    users = [
        name
        for name, source in config.sources.items()
        if source.enabled and (everyone or source.fallback == "local")
    ]
    wyoming = config.wyoming
    if wyoming is not None and (everyone or wyoming.fallback == "local"):
        users.append("wyoming")  # its requests, one at a time per worker
    return users


@contextlib.asynccontextmanager
async def embedded_engine(config: ListendConfig) -> AsyncIterator[LocalEngine | None]:
    """The running engine (one worker per source using it, at most one per core), or None."""
    users = local_sources(config)
    if not users:
        yield None
        return
    # aiohttp, numpy and pocketsphinx only for a daemon that uses the engine (15 MB of RSS)
    from listend.engine.choice import start_engine  # noqa: PLC0415
    from listend.engine.workers import EngineError  # noqa: PLC0415

    chosen = config.local_engine
    workers = min(len(users), os.cpu_count() or 1)
    try:
        engine = await start_engine(
            chosen.engine, chosen.model, workers=workers, wyoming=chosen.wyoming
        )
    except (OSError, ImportError, EngineError) as exc:
        raise ListendError(f"cannot start the local engine: {exc}") from exc
    if engine.finals is not None and "finalize_timeout" not in config.deepgram.model_fields_set:
        timeout = max(config.deepgram.finalize_timeout, SLOW_FINALS_FINALIZE_TIMEOUT)
        config.deepgram.finalize_timeout = timeout
        log.debug("deepgram.finalize_timeout: %gs for the %s engine", timeout, engine.description)
    try:
        if config.deepgram.uses_local_engine():
            why = "deepgram.url is local" if config.deepgram.url else "no Deepgram API key"
            log.info(
                "%s: transcribing with the embedded offline engine (%s, English) at %s",
                why,
                engine.description,
                engine.url,
            )
        else:
            log.info(
                "offline engine (%s) ready at %s for fallback (%s)",
                engine.description,
                engine.url,
                ", ".join(users),
            )
        yield engine
    finally:
        await engine.stop()
