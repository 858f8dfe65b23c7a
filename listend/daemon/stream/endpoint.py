"""Where a stream session connects: Deepgram, or the local engine at its loopback URL."""

from __future__ import annotations

from dataclasses import dataclass, field

from listend.daemon.config.models import ListendConfig
from listend.daemon.stream.deepgram import StreamClient, shared_client

#: Endpoint URL meaning "the local engine, which is not running": audio is read, not sent.
LOCAL = "local"


@dataclass
class Endpoint:
    """Where and how to connect: a base URL and the Authorization header value."""

    url: str
    authorization: str | None = field(repr=False)  # a secret: never in logs or tracebacks
    engine: str = "deepgram"  # what events report as their `engine`

    def client(self) -> StreamClient | None:
        """Where the sessions of the endpoint connect (None for the local engine that does
        not run)."""
        if self.url == LOCAL:
            return None
        return shared_client(self.url)


def build_endpoint(
    config: ListendConfig, local_url: str | None = None, local_authorization: str | None = None
) -> Endpoint:
    """Deepgram with the configured credentials, or the local engine at ``local_url`` (with
    the engine's own per-process token)."""
    dg = config.deepgram
    if dg.uses_local_engine():  # the embedded engine's URL once it runs
        return Endpoint(local_url or LOCAL, local_authorization, engine="local")
    if dg.access_token is not None:
        return Endpoint(dg.url or "https://api.deepgram.com", f"Bearer {dg.access_token.reveal()}")
    key = dg.effective_api_key()
    return Endpoint(dg.url or "https://api.deepgram.com", f"Token {key}" if key else None)
