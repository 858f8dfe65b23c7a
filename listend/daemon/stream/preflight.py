"""Checks `listend validate` runs beyond the schema: each source is built (cheap: no device is
opened, no process started) so a missing file, an unknown program or a stream setting that
contradicts the source's audio format is reported before the daemon is started."""

from __future__ import annotations

from listend.daemon.config.models import ListendConfig
from listend.daemon.errors import ConfigError, ListendError
from listend.daemon.plugin.manager import PluginHost
from listend.daemon.plugin.source import PluginContext


def check_sources(config: ListendConfig, host: PluginHost) -> None:
    """Raise one :class:`ConfigError` listing every source that cannot start as configured."""
    from listend.daemon.stream.deepgram import check_stream_format  # noqa: PLC0415 - the SDK
    from listend.daemon.stream.voice_gate import check_gate_format  # noqa: PLC0415

    context = PluginContext(device=config.device, state_dir=config.state_dir)
    problems: list[str] = []
    for name, cfg in config.sources.items():
        if not cfg.enabled:
            continue
        cls = host.sources.get(cfg.type)
        if cls is None:  # the loader already reported it
            continue
        try:
            source = cls(name, cfg, context)
            options = cfg.stream.merged_over(config.deepgram.options)
            check_stream_format(name, options, source.audio_format)
            if cfg.vad is not None and cfg.vad.enabled:
                check_gate_format(source.audio_format, name)
        except ListendError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n  ".join(["sources that cannot start:", *problems]))
