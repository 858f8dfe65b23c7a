"""Checks `listend validate` runs beyond the schema: each source is built (cheap: no device is
opened, no process started) so a missing file, an unknown program or a stream setting that
contradicts the source's audio format is reported before the daemon is started, at the line of
the setting it is about."""

from __future__ import annotations

from listend.daemon.config.issues import ConfigIssue, ConfigIssuesError, Loc, Positions
from listend.daemon.config.models import ListendConfig
from listend.daemon.errors import ListendError
from listend.daemon.plugin.manager import PluginHost
from listend.daemon.plugin.source import AudioFormat, PluginContext
from listend.daemon.plugin.stream_options import StreamOptions

_FORMAT_KEYS = ("encoding", "sample_rate", "channels")


def check_sources(
    config: ListendConfig,
    host: PluginHost,
    *,
    filename: str = "config",
    positions: Positions | None = None,
) -> None:
    """Raise one :class:`ConfigIssuesError` listing every source that cannot start as configured.

    ``positions`` (from :func:`~listend.daemon.config.loader.parse_config_located`) places each
    problem in the file; without them the problems carry only their key path.
    """
    from listend.daemon.stream.deepgram import check_stream_format  # noqa: PLC0415 - the SDK
    from listend.daemon.stream.voice_gate import check_gate_format  # noqa: PLC0415

    where = positions or Positions()
    context = PluginContext(device=config.device, state_dir=config.state_dir)
    issues: list[ConfigIssue] = []
    for name, cfg in config.sources.items():
        if not cfg.enabled:
            continue
        cls = host.sources.get(cfg.type)
        if cls is None:  # the loader already reported it
            continue
        path: Loc = ("sources", name)
        try:
            source = cls(name, cfg, context)
            options = cfg.stream.merged_over(config.deepgram.options)
            path = _format_key(where, name, options, source.audio_format)
            check_stream_format(name, options, source.audio_format)
            if cfg.vad is not None and cfg.vad.enabled:
                path = ("sources", name, "vad")
                check_gate_format(source.audio_format, name)
        except ListendError as exc:
            message = str(exc).removeprefix(f"source {name}: ")
            issues.append(where.issue(path, message, key=True))
    if issues:
        raise ConfigIssuesError(filename, issues, note="; sources that cannot start")


def _format_key(where: Positions, name: str, options: StreamOptions, fmt: AudioFormat) -> Loc:
    """The first stream setting that contradicts the source: in the source, else in deepgram."""
    for key in _FORMAT_KEYS:
        given = getattr(options, key)
        if given is None or given == getattr(fmt, key):
            continue
        own: Loc = ("sources", name, "stream", key)
        shared: Loc = ("deepgram", "options", key)
        return own if where.has(own) or not where.has(shared) else shared
    return ("sources", name)
