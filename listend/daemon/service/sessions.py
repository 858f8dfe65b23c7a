"""Building a stream session: where it connects, with which options, and its fallback.

One place for the daemon's sources and the Wyoming server's requests, so both reach Deepgram
(or the local engine) the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from listend.daemon.config.models import ListendConfig
from listend.daemon.events import EventKind
from listend.daemon.plugin.source import Source
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.plugin.trigger_options import TriggerConfig, boosted
from listend.daemon.service.local_engine import LocalEndpoint
from listend.daemon.stream.capture import Publish
from listend.daemon.stream.endpoint import Endpoint, build_endpoint
from listend.daemon.stream.session import StreamSession
from listend.daemon.stream.spool import Spool

log = logging.getLogger(__name__)


def new_session(
    config: ListendConfig,
    *,
    name: str,
    source: Source,
    options: StreamOptions,
    fallback_local: bool,
    engine: LocalEndpoint | None,
    publish: Publish,
    kinds: Callable[[], Collection[EventKind]] | None = None,
    spool: Spool | None = None,
    triggers: Mapping[str, TriggerConfig] | None = None,
) -> StreamSession:
    """A session for ``source``; ``options`` override ``deepgram.options``; the ``triggers``'
    phrases are boosted."""
    url, token = (engine.url, engine.authorization) if engine is not None else (None, None)
    endpoint = build_endpoint(config, url, token)
    fallback = None
    if fallback_local and endpoint.engine != "local":
        if engine is None:  # a reload asked for it: the engine starts with the daemon
            log.warning("%s: fallback: local takes effect after a restart", name)
        else:
            fallback = Endpoint(engine.url, engine.authorization, engine="local")
    return StreamSession(
        name=name,
        device=config.device,
        source=source,
        options=boosted(options.merged_over(config.deepgram.options), triggers or {}),
        deepgram=config.deepgram,
        endpoint=endpoint,
        publish=publish,
        kinds=kinds,
        fallback=fallback,
        spool=spool,
        triggers=triggers,
    )
