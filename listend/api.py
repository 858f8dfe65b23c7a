"""The public plugin API: everything a source or sink plugin imports, from one place.

Built-in plugins (``listend.plugins.*``) and third-party packages import only from here, so the
daemon's internals can move without breaking them. A plugin module exposes ``@hookimpl``
functions ``register_source_types`` / ``register_sink_types`` (see :mod:`hookspecs
<listend.daemon.plugin.hookspecs>`) through the ``listend`` entry-point group.

The contract, beyond the abstract methods:

- :class:`Source` ``realtime`` (class or instance attribute, default True): live audio that
  cannot wait; False lets the session pause reading while its replay buffer is full.
- :class:`Source` ``vad``: the voice gate settings (from the ``vad:`` key by default).
- :class:`Sink` ``max_batch``, ``start``/``stop``, ``reachable()`` (for ``/readyz``) and
  ``outbox_options`` (from the ``outbox:`` key by default).
"""

from __future__ import annotations

from listend import __version__
from listend.daemon.child_env import child_environment
from listend.daemon.config.paths import ConfigPath
from listend.daemon.config.secrets import Secret, SecretRef, SecretResolutionError, resolve_secret
from listend.daemon.config.urls import redact_url, reject_userinfo
from listend.daemon.errors import ConfigError, ListendError, PluginError
from listend.daemon.events import (
    SCHEMA_VERSION,
    AnyEvent,
    EventKind,
    MetadataEvent,
    PhraseEvent,
    SpeechStartedEvent,
    TranscriptEvent,
    UtteranceEndEvent,
    Word,
    from_json,
    to_json,
)
from listend.daemon.plugin.control import DaemonControl, StreamStatus
from listend.daemon.plugin.hookspecs import RegisterSink, RegisterSource, hookimpl
from listend.daemon.plugin.lazy import lazy_sink, lazy_source
from listend.daemon.plugin.sink import (
    DeliveryError,
    OutboxOptions,
    PermanentDeliveryError,
    Sink,
    SinkConfig,
)
from listend.daemon.plugin.source import AudioFormat, PluginContext, Source, SourceConfig, VadConfig
from listend.daemon.plugin.stream_options import StreamOptions
from listend.daemon.retry.backoff import Backoff
from listend.daemon.retry.outage import Outage
from listend.daemon.retry.restarting import (
    RestartingSourceConfig,
    RestartStats,
    SourceInterrupted,
    restart_problem,
    restarting,
)
from listend.daemon.retry.retrying import retrying
from listend.daemon.tasks import cancel_and_wait
from listend.subtitles import VTT_HEADER, final_cues, printable, srt_cue, text_line, vtt_cue

__all__ = [
    "SCHEMA_VERSION",
    "VTT_HEADER",
    "AnyEvent",
    "AudioFormat",
    "Backoff",
    "ConfigError",
    "ConfigPath",
    "DaemonControl",
    "DeliveryError",
    "EventKind",
    "ListendError",
    "MetadataEvent",
    "Outage",
    "OutboxOptions",
    "PermanentDeliveryError",
    "PhraseEvent",
    "PluginContext",
    "PluginError",
    "RegisterSink",
    "RegisterSource",
    "RestartStats",
    "RestartingSourceConfig",
    "Secret",
    "SecretRef",
    "SecretResolutionError",
    "Sink",
    "SinkConfig",
    "Source",
    "SourceConfig",
    "SourceInterrupted",
    "SpeechStartedEvent",
    "StreamOptions",
    "StreamStatus",
    "TranscriptEvent",
    "UtteranceEndEvent",
    "VadConfig",
    "Word",
    "__version__",
    "cancel_and_wait",
    "child_environment",
    "final_cues",
    "from_json",
    "hookimpl",
    "lazy_sink",
    "lazy_source",
    "printable",
    "redact_url",
    "reject_userinfo",
    "resolve_secret",
    "restart_problem",
    "restarting",
    "retrying",
    "srt_cue",
    "text_line",
    "to_json",
    "vtt_cue",
]
