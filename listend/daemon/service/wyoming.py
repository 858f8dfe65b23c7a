"""Wiring the Wyoming server into the daemon: its requests' sessions are built like sources'."""

from __future__ import annotations

from collections.abc import Callable

from listend.daemon.config.models import ListendConfig
from listend.daemon.events import EventKind
from listend.daemon.plugin.source import PluginContext
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.service.local_engine import LocalEndpoint
from listend.daemon.service.sessions import new_session
from listend.daemon.stream.capture import Publish
from listend.daemon.stream.session import StreamSession
from listend.daemon.wyoming.audio import RequestAudio
from listend.daemon.wyoming.info import describe
from listend.daemon.wyoming.server import WyomingServer

#: A request needs only finals: interim results are never built for it.
_FINALS: tuple[EventKind, ...] = ("final",)


def wyoming_server(
    config: ListendConfig,
    context: PluginContext,
    engine: Callable[[], LocalEndpoint | None],
) -> WyomingServer:
    """The server for ``config.wyoming`` (which must be set); ``engine`` is read per request."""
    wyoming = config.wyoming
    if wyoming is None:
        raise ValueError("wyoming_server() without a wyoming: section")

    def make_session(
        name: str, audio: RequestAudio, options: StreamOptions, publish: Publish
    ) -> StreamSession:
        return new_session(
            config,
            name=name,
            source=audio,
            options=options,
            fallback_local=wyoming.fallback == "local",
            engine=engine(),
            publish=publish,
            kinds=lambda: _FINALS,
        )

    return WyomingServer(wyoming, info=describe(config), make_session=make_session, context=context)
