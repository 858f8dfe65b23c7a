"""The ``http`` sink: POST transcripts as JSON to a webhook.

One event per request (the event object), or with ``batch: N`` up to N per request as a JSON
array. Delivery is confirmed by any 2xx. Network errors, timeouts, 5xx, 408 and 429 are
retried from the outbox with backoff, honouring ``Retry-After``; any other status means the
receiver will never take these events, so they go to the dead-letter file instead of
blocking the ones behind them.

Signature (with ``signing_secret``): ``X-Listend-Timestamp: <unix seconds>`` and
``X-Listend-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``; receivers
recompute it over the raw body, compare in constant time and reject old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from listend.api import (
    AnyEvent,
    ConfigPath,
    DeliveryError,
    PermanentDeliveryError,
    PluginContext,
    SecretRef,
    Sink,
    SinkConfig,
    __version__,
    redact_url,
    reject_userinfo,
    to_json,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Listend-Signature"
TIMESTAMP_HEADER = "X-Listend-Timestamp"
RETRY_STATUSES = frozenset({408, 429})
#: A Retry-After beyond this is treated as this: a typo on the server must not park us a day.
MAX_RETRY_AFTER = 3600.0
_BODY_EXCERPT = 200


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: SecretRef


class HttpSinkConfig(SinkConfig):
    url: str = Field(description="http:// or https:// URL to POST to")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    bearer_token: SecretRef | None = Field(default=None, description="Authorization: Bearer")
    basic_auth: BasicAuth | None = None
    signing_secret: SecretRef | None = Field(
        default=None, description="shared secret for the X-Listend-Signature HMAC"
    )
    batch: int = Field(default=1, ge=1, le=1000, description=">1: POST JSON arrays of events")
    timeout: float = Field(default=10.0, gt=0, le=600, description="seconds per request")
    ca_file: ConfigPath | None = Field(default=None, description="CA bundle for https")
    verify_tls: bool = Field(default=True, description="false: skip certificate checks")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        import httpx  # noqa: PLC0415 - httpx (~5 MB) only for configs with an http sink

        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"expected an http:// or https:// URL, found {redact_url(value)!r}")
        return reject_userinfo(value, "basic_auth: (or headers:)")

    @field_validator("headers")
    @classmethod
    def _no_auth_header(cls, value: dict[str, str]) -> dict[str, str]:
        if any(name.lower() == "authorization" for name in value):
            raise ValueError("use bearer_token or basic_auth (secret references), not a header")
        return value


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Listend-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After`` (delta seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class HttpSink(Sink):
    type_name = "http"
    config_model = HttpSinkConfig
    config: HttpSinkConfig

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        super().__init__(name, config, context)
        self._client: httpx.AsyncClient | None = None
        self._last_ok = True
        self.max_batch = self.config.batch

    async def start(self) -> None:
        import httpx  # noqa: PLC0415 - see _http_url

        cfg = self.config
        verify: ssl.SSLContext | bool = cfg.verify_tls
        if cfg.ca_file is not None and cfg.verify_tls:
            verify = ssl.create_default_context(cafile=cfg.ca_file)
        auth: httpx.Auth | None = None
        if cfg.basic_auth is not None:
            auth = httpx.BasicAuth(cfg.basic_auth.username, cfg.basic_auth.password.reveal())
        headers = {"User-Agent": f"listend/{__version__}", **cfg.headers}
        if cfg.bearer_token is not None:
            headers["Authorization"] = f"Bearer {cfg.bearer_token.reveal()}"
        self._client = httpx.AsyncClient(
            headers=headers, auth=auth, timeout=cfg.timeout, verify=verify, trust_env=False
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def reachable(self) -> bool:
        return self._last_ok

    def body(self, events: Sequence[AnyEvent]) -> bytes:
        if self.config.batch == 1 and len(events) == 1:
            return to_json(events[0]).encode()
        return ("[" + ",".join(to_json(e) for e in events) + "]").encode()

    def request_headers(self, events: Sequence[AnyEvent], body: bytes) -> Mapping[str, str]:
        headers = {"Content-Type": "application/json"}
        if len(events) == 1:
            headers["X-Listend-Event-Id"] = events[0].id
        if self.config.signing_secret is not None:
            timestamp = str(int(time.time()))
            secret = self.config.signing_secret.reveal().encode()
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        return headers

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        import httpx  # noqa: PLC0415 - loaded by start()

        if self._client is None:
            raise RuntimeError(f"sink {self.name}: deliver() before start()")
        body = self.body(events)
        try:
            response = await self._client.post(
                self.config.url, content=body, headers=self.request_headers(events, body)
            )
        except httpx.HTTPError as exc:  # connection refused, timeouts, protocol errors
            self._last_ok = False
            raise DeliveryError(f"POST {self.config.url}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004
            self._last_ok = True
            return
        excerpt = response.text[:_BODY_EXCERPT].strip()
        reason = f"POST {self.config.url}: HTTP {status} {response.reason_phrase}: {excerpt}"
        if status >= 500 or status in RETRY_STATUSES:  # noqa: PLR2004
            self._last_ok = False
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise DeliveryError(reason, retry_after=wait)
        self._last_ok = True  # the receiver answers; it just refuses these events
        raise PermanentDeliveryError(reason)
