"""Checks beyond the schema, run by `listend validate` and before `listend run` starts: the
state directory is (or can be made) a writable directory, and each source is built (cheap: no
device is opened, no process started) so a missing file, an unknown program or a stream setting
that contradicts the source's audio format is reported before the daemon is started, at the line
of the setting it is about."""

from __future__ import annotations

import os
from pathlib import Path

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
    unusable = state_dir_problem(config.state_dir)
    if unusable:
        issues.append(where.issue(("state_dir",), unusable))
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
        except Exception as exc:  # a plugin's constructor failing its own way: still reported
            message = f"the {cfg.type} source cannot be built: {type(exc).__name__}: {exc}"
            issues.append(where.issue(path, message, key=True))
    if issues:
        raise ConfigIssuesError(
            filename, issues, note="; sources that cannot start, or no state directory"
        )


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


def state_dir_problem(state_dir: Path) -> str | None:
    """Why the daemon could not keep its outboxes in ``state_dir`` (None: it can)."""
    try:
        existing = next(p for p in (state_dir, *state_dir.parents) if p.exists())
        usable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    except ValueError as exc:  # a NUL byte
        return f"{str(state_dir)!r} is not a usable path: {exc}"
    except OSError as exc:
        return f"cannot check {state_dir}: {exc.strerror}"
    if usable:
        return None
    what = "is" if existing == state_dir else f"cannot be created: {existing} is"
    why = "not writable by this user" if existing.is_dir() else "not a directory"
    return f"{state_dir} {what} {why}"
