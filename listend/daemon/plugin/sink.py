"""What a sink plugin provides: ``deliver`` that returns only once the events are safe."""

from __future__ import annotations

from abc import ABC
from collections.abc import Coroutine, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from listend.daemon.events import AnyEvent, EventKind
from listend.daemon.plugin.source import PluginContext


class OutboxOptions(BaseModel):
    """How much a sink's durable outbox holds while the sink is unreachable, and for how long
    the daemon keeps delivering when it stops."""

    model_config = ConfigDict(extra="forbid")

    max_events: int = Field(
        default=100_000, ge=1, le=100_000_000, description="most undelivered events kept on disk"
    )
    policy: Literal["drop_oldest", "block"] = Field(
        default="drop_oldest",
        description="when full: drop the oldest (logged, counted gap) or block the sources",
    )
    drain_timeout: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="seconds to keep delivering on stop; the rest stays",
    )


class SinkConfig(BaseModel):
    """Keys every sink has; a plugin subclasses it and adds its own options.

    ``defer_build``: a subclass's validator is built when a config first uses its type, not
    when its plugin is imported (each installed type's would otherwise cost RSS in every
    daemon)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: str = Field(description="the sink type, as listed by `listend plugins`")
    enabled: bool = True
    receive: list[EventKind] = Field(
        default_factory=lambda: list[EventKind](["final"]),
        description=(
            "event kinds this sink gets: final, interim, utterance_end, speech_started, "
            "metadata, phrase"
        ),
    )
    outbox: OutboxOptions = Field(default_factory=OutboxOptions)


class DeliveryError(Exception):
    """Delivery failed for now; the events stay in the outbox and are retried with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """These events can never be delivered (e.g. HTTP 400): dead-letter them, do not retry."""


class Sink(ABC):
    """A transcript sink.

    ``deliver`` returns only when the sink has confirmed the events (PUBACK, HTTP 2xx, file
    flushed); raising :class:`DeliveryError` keeps them queued. Deliveries to one sink are never
    concurrent, and events arrive in per-source order.
    """

    type_name: ClassVar[str]
    config_model: ClassVar[type[SinkConfig]] = SinkConfig
    #: Most events handed to one ``deliver`` call (an instance may set its own from config).
    max_batch: int = 1

    def __init__(self, name: str, config: Any, context: PluginContext) -> None:
        self.name = name
        self.config = config
        self.context = context

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called once before the first delivery."""

    async def deliver(self, events: Sequence[AnyEvent]) -> None:
        """Deliver the events, in order; return only once they are confirmed."""
        raise NotImplementedError

    def send_now(  # an optional hook
        self,
        events: Sequence[AnyEvent],  # noqa: ARG002
    ) -> Coroutine[Any, Any, None] | None:
        """Optional: start delivering ``events`` right now, without waiting (write them to a
        connected socket), and return what to await for the rest, as :meth:`deliver` would
        finish (confirmed, or :class:`DeliveryError`); None when that cannot start now (then
        :meth:`deliver` is called). The worker calls it from the task that produced a final
        while the sink is idle, so the final leaves in the loop iteration it arrived in."""
        return None

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called once after the last delivery."""

    def reachable(self) -> bool:
        """Whether the sink can deliver right now (for /readyz)."""
        return True

    def problem(self) -> str | None:
        """Why the sink cannot deliver right now (broker refused, ...) for /readyz and
        STATUS=; None when it can. The default says only what :meth:`reachable` says."""
        return None if self.reachable() else "unreachable"

    def page_url(self) -> str | None:
        """A page people open for this sink (the captions page), e.g. Home Assistant's link."""
        return None

    @property
    def outbox_options(self) -> OutboxOptions:
        """How the daemon's durable outbox for this sink behaves (its ``outbox:`` key)."""
        config: SinkConfig = self.config
        return config.outbox
