"""The core's view of a local engine: something serving Deepgram's protocol at a URL.

The daemon does not know which engine that is (the embedded pocketsphinx one lives in
:mod:`listend.engine`, outside the core): the composition root (the CLI) hands the
:class:`~listend.daemon.service.daemon.Daemon` a :data:`LocalEngineFactory`, which runs the
engine for as long as the daemon runs when the configuration needs one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from listend.daemon.config.models import ListendConfig


class LocalEndpoint(Protocol):
    """A running local engine."""

    @property
    def url(self) -> str:
        """Its base URL (loopback), where sessions connect as they would to Deepgram."""
        ...

    @property
    def authorization(self) -> str | None:
        """The Authorization header it requires (a per-process token: any local user can
        reach a loopback port)."""
        ...


#: Runs the local engine the config needs while the context is open; yields None if none.
LocalEngineFactory = Callable[[ListendConfig], AbstractAsyncContextManager[LocalEndpoint | None]]


@contextlib.asynccontextmanager
async def no_local_engine(_config: ListendConfig) -> AsyncIterator[LocalEndpoint | None]:
    """No engine: sources that would need one are read but not transcribed."""
    yield None
